"""The local test hub speaks enough of the Hub API for huggingface_hub 2.4.0 to download from it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, constants, file_download, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils import _http as hf_http

from tests.hubserver import HubServer, git_blob_sha1, point_huggingface_hub_at

REPO = "acme/tiny-model"
CONFIG = b'{"model_type": "tiny", "hidden_size": 8}\n'
FILES: dict[str, bytes | int] = {
    "config.json": CONFIG,
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    "model.safetensors": 50_000,  # LFS (>= 10 kB), generated
    "weights/shard-00001.bin": 20_000,
}
MIB = 1 << 20


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record huggingface_hub's retry back-off sleeps instead of sleeping, so fault tests stay fast."""
    recorded: list[float] = []
    fake_time = types.SimpleNamespace(sleep=recorded.append)
    monkeypatch.setattr(hf_http, "time", fake_time)  # http_backoff: 1, 2, 4, 8, 8 s
    monkeypatch.setattr(file_download, "time", fake_time)  # http_get: 1 s before resuming
    return recorded


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> Iterator[HubServer]:
    with HubServer() as server:
        point_huggingface_hub_at(monkeypatch, server.url)
        yield server


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def sha(hub: HubServer) -> str:
    return hub.add_repo(REPO, FILES)


def _resolve_calls(hub: HubServer, method: str) -> list[str]:
    return [path for verb, path in hub.requests if verb == method and "/resolve/" in path]


# ------------------------------------------------------------------------------------------------ downloads


def test_snapshot_download_uses_the_standard_cache_layout(hub: HubServer, sha: str, cache_dir: Path) -> None:
    folder = Path(snapshot_download(REPO, cache_dir=cache_dir))

    assert folder == cache_dir / "models--acme--tiny-model" / "snapshots" / sha
    assert (cache_dir / "models--acme--tiny-model" / "refs" / "main").read_text() == sha
    for path in FILES:
        assert (folder / path).read_bytes() == hub.content(REPO, path)
    assert (folder / "config.json").read_bytes() == CONFIG
    blobs = {p.name for p in (cache_dir / "models--acme--tiny-model" / "blobs").iterdir()}
    assert git_blob_sha1(CONFIG) in blobs  # small files are stored under their git sha1 ...
    assert hub.sha256(REPO, "model.safetensors") in blobs  # ... LFS files under their sha256
    assert hub.get_counts == {(REPO, path): 1 for path in FILES}


def test_dry_run_reports_sizes_without_downloading(hub: HubServer, sha: str, cache_dir: Path) -> None:
    infos = snapshot_download(REPO, cache_dir=cache_dir, dry_run=True)

    sizes = {info.filename: info.file_size for info in infos}
    assert sizes == {
        "config.json": len(CONFIG),
        "tokenizer/vocab.txt": 6,
        "model.safetensors": 50_000,
        "weights/shard-00001.bin": 20_000,
    }
    assert all(info.will_download and info.commit_hash == sha for info in infos)
    assert hub.get_counts == {}


def test_allow_and_ignore_patterns(hub: HubServer, sha: str, cache_dir: Path) -> None:
    folder = Path(snapshot_download(REPO, cache_dir=cache_dir, allow_patterns=["*.json", "weights/*"]))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "config.json",
        "weights/shard-00001.bin",
    ]

    snapshot_download(REPO, cache_dir=cache_dir, ignore_patterns=["*.bin", "*.json"])
    assert set(hub.get_counts) == {(REPO, p) for p in FILES}


def test_second_snapshot_download_is_served_from_the_cache(hub: HubServer, sha: str, cache_dir: Path) -> None:
    snapshot_download(REPO, cache_dir=cache_dir)
    hub.requests.clear()

    snapshot_download(REPO, cache_dir=cache_dir)

    assert hub.get_counts == {(REPO, path): 1 for path in FILES}
    assert hub.requests == [("GET", f"/api/models/{REPO}/revision/main")]  # tree listing cached on disk too


def test_revisions_branches_tags_and_old_commits(hub: HubServer, cache_dir: Path) -> None:
    first = hub.add_repo(REPO, {"config.json": b"v1"}, tags={"v1.0": "main"})
    second = hub.add_repo(REPO, {"config.json": b"v2"})
    feature = hub.add_repo(REPO, {"config.json": b"feature"}, branch="feature/x")
    assert len({first, second, feature}) == 3

    def read(revision: str) -> bytes:
        return Path(hf_hub_download(REPO, "config.json", revision=revision, cache_dir=cache_dir)).read_bytes()

    assert read("main") == b"v2"
    assert read(first) == b"v1"
    assert read("v1.0") == b"v1"
    assert read("feature/x") == b"feature"  # sent URL-encoded: feature%2Fx
    refs = HfApi().list_repo_refs(REPO)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": second, "feature/x": feature}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": first}


def test_large_generated_file_resumes_with_range_after_a_reset(
    hub: HubServer, cache_dir: Path, sleeps: list[float]
) -> None:
    hub.add_repo(REPO, {"big.bin": 24 * MIB})
    hub.set_fault(REPO, "big.bin", "reset", times=1)

    path = Path(hf_hub_download(REPO, "big.bin", cache_dir=cache_dir))

    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.sha256(REPO, "big.bin")
    assert hub.get_counts[(REPO, "big.bin")] == 2
    # httpx hands over the body in 10 MiB pieces: the piece of the cut response that was complete is kept
    assert hub.range_requests == [(REPO, "big.bin", 10 * MIB)]
    assert sleeps == [1]


def test_stall_times_out_and_the_download_resumes(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.5)
    hub.add_repo(REPO, {"model.bin": 300_000})
    hub.set_fault(REPO, "model.bin", "stall", times=1)

    path = Path(hf_hub_download(REPO, "model.bin", cache_dir=cache_dir))

    assert path.read_bytes() == hub.content(REPO, "model.bin")
    assert hub.get_counts[(REPO, "model.bin")] == 2


def test_rst_is_not_retried_by_huggingface_hub(hub: HubServer, cache_dir: Path) -> None:
    hub.add_repo(REPO, {"model.bin": 300_000})
    hub.set_fault(REPO, "model.bin", "rst")

    with pytest.raises(
        httpx2.ReadError
    ):  # http_get only resumes after ConnectError/Timeout/RemoteProtocolError
        hf_hub_download(REPO, "model.bin", cache_dir=cache_dir)
    assert hub.get_counts[(REPO, "model.bin")] == 1


# ----------------------------------------------------------------------------------------------- metadata


def test_model_info_and_tree_listing_carry_checksums(hub: HubServer, sha: str) -> None:
    api = HfApi()
    info = api.model_info(REPO, files_metadata=True)
    assert info.sha == sha
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert siblings["config.json"].blob_id == git_blob_sha1(CONFIG)
    assert siblings["config.json"].lfs is None
    lfs = siblings["model.safetensors"].lfs
    assert lfs is not None
    assert (lfs.sha256, lfs.size) == (hub.sha256(REPO, "model.safetensors"), 50_000)

    tree = list(api.list_repo_tree(REPO, recursive=True))
    assert sorted(e.path for e in tree if isinstance(e, RepoFolder)) == ["tokenizer", "weights"]
    files = {e.path: e for e in tree if isinstance(e, RepoFile)}
    assert set(files) == set(FILES)
    pointer = files["model.safetensors"]
    assert pointer.lfs is not None and pointer.lfs.sha256 == lfs.sha256
    lfs_pointer = (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{lfs.sha256}\nsize 50000\n".encode()
    )
    assert pointer.blob_id == git_blob_sha1(lfs_pointer)
    assert pointer.lfs.pointer_size == len(lfs_pointer)

    assert sorted(e.path for e in api.list_repo_tree(REPO)) == sorted(
        ["config.json", "model.safetensors", "tokenizer", "weights"]
    )
    expanded = list(api.list_repo_tree(REPO, recursive=True, expand=True))
    assert {e.last_commit.oid for e in expanded if e.last_commit is not None} == {sha}
    assert len(expanded) == len(tree)
    hub.tree_page_size = 2  # the Hub pages by 1000 with a Link header; huggingface_hub follows it
    assert [e.path for e in api.list_repo_tree(REPO, recursive=True)] == [e.path for e in tree]


def test_resolve_headers_and_ranges(hub: HubServer, sha: str) -> None:
    url = f"{hub.url}/{REPO}/resolve/main/model.safetensors"
    content = hub.content(REPO, "model.safetensors")
    with httpx2.Client() as client:
        head = client.head(url)
        assert head.status_code == 200
        assert head.headers["X-Repo-Commit"] == sha
        assert (
            head.headers["X-Linked-Etag"]
            == head.headers["ETag"]
            == f'"{hub.sha256(REPO, "model.safetensors")}"'
        )
        assert head.headers["X-Linked-Size"] == head.headers["Content-Length"] == "50000"
        assert head.headers["Accept-Ranges"] == "bytes"

        tail = client.get(url, headers={"Range": "bytes=49990-"})
        assert (tail.status_code, tail.content) == (206, content[49990:])
        assert tail.headers["Content-Range"] == "bytes 49990-49999/50000"
        assert client.get(url, headers={"Range": "bytes=5-9"}).content == content[5:10]
        assert client.get(url, headers={"Range": "bytes=-3"}).content == content[-3:]
        assert client.get(url, headers={"Range": "bytes=50000-"}).status_code == 416

        small = client.head(f"{hub.url}/{REPO}/resolve/{sha}/config.json")
        assert small.headers["ETag"] == f'"{git_blob_sha1(CONFIG)}"'
        assert "X-Linked-Etag" not in small.headers


# ------------------------------------------------------------------------------------------------- errors


def test_missing_repo_raises_repository_not_found(hub: HubServer, cache_dir: Path) -> None:
    with pytest.raises(RepositoryNotFoundError) as error:
        snapshot_download("acme/nope", cache_dir=cache_dir)
    assert error.value.response.status_code == 401  # anonymous, like the Hub
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/nope", "config.json", cache_dir=cache_dir)


def test_removed_repo_is_not_found(hub: HubServer, sha: str, cache_dir: Path) -> None:
    hub.remove_repo(REPO)
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info(REPO)


def test_bad_revision_and_missing_file(hub: HubServer, sha: str, cache_dir: Path) -> None:
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="no-such-branch", cache_dir=cache_dir)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="0" * 40, cache_dir=cache_dir)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "nope.txt", cache_dir=cache_dir)


def test_gated_repo_needs_a_valid_token(hub: HubServer, cache_dir: Path) -> None:
    hub.add_repo(REPO, {"config.json": CONFIG}, gated=True)
    hub.valid_tokens.add("hf_good")

    with pytest.raises(GatedRepoError) as anonymous:
        snapshot_download(REPO, cache_dir=cache_dir)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as refused:
        snapshot_download(REPO, cache_dir=cache_dir, token="hf_other")
    assert refused.value.response.status_code == 403

    folder = Path(snapshot_download(REPO, cache_dir=cache_dir, token="hf_good"))
    assert (folder / "config.json").read_bytes() == CONFIG
    assert HfApi().model_info(REPO).gated == "manual"  # metadata stays public, as on the Hub


def test_500_on_head_is_retried_with_backoff_then_surfaces(
    hub: HubServer, sha: str, cache_dir: Path, sleeps: list[float]
) -> None:
    hub.set_fault(REPO, None, "500")

    with pytest.raises(LocalEntryNotFoundError) as error:
        hf_hub_download(REPO, "config.json", cache_dir=cache_dir)

    cause = error.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response.status_code == 500
    # one HEAD without retry, then http_backoff: 1 + 5 retries, sleeping 1, 2, 4, 8, 8 s (23 s unpatched)
    assert len(_resolve_calls(hub, "HEAD")) == 7
    assert sleeps == [1, 2, 4, 8, 8]
    assert hub.get_counts == {}


def test_500_on_get_is_not_retried(hub: HubServer, sha: str, cache_dir: Path, sleeps: list[float]) -> None:
    hub.set_fault(REPO, "config.json", "500", methods=["GET"])

    with pytest.raises(HfHubHTTPError) as error:
        snapshot_download(REPO, cache_dir=cache_dir, allow_patterns="config.json")

    assert error.value.response.status_code == 500
    assert hub.get_counts == {(REPO, "config.json"): 1}
    assert sleeps == []


def test_transient_faults_recover(hub: HubServer, sha: str, cache_dir: Path, sleeps: list[float]) -> None:
    hub.set_fault(REPO, "config.json", "500", times=1)  # the failed HEAD is retried at once
    hub.set_fault(REPO, "tokenizer/vocab.txt", "429", times=1, retry_after=3, methods=["GET"])

    folder = Path(snapshot_download(REPO, cache_dir=cache_dir, allow_patterns=["*.json", "*.txt"]))

    assert (folder / "config.json").read_bytes() == CONFIG
    assert hub.get_counts == {(REPO, "config.json"): 1, (REPO, "tokenizer/vocab.txt"): 2}
    assert sleeps == [4]  # GET 429: Retry-After + 1 s


# ------------------------------------------------------------------------------------------------ checksums


def test_verify_repo_checksums_passes_then_catches_a_file_changed_on_disk(
    hub: HubServer, sha: str, cache_dir: Path
) -> None:
    folder = Path(snapshot_download(REPO, cache_dir=cache_dir))
    api = HfApi()

    result = api.verify_repo_checksums(REPO, revision=sha, cache_dir=cache_dir)
    assert (result.checked_count, result.mismatches, result.missing_paths) == (len(FILES), [], [])

    (folder / "config.json").write_bytes(CONFIG.replace(b"8", b"9"))  # writes through the symlink to the blob
    (folder / "model.safetensors").write_bytes(b"\0" * 50_000)
    result = api.verify_repo_checksums(REPO, cache_dir=cache_dir)
    assert {(m["path"], m["algorithm"]) for m in result.mismatches} == {
        ("config.json", "git-sha1"),
        ("model.safetensors", "sha256"),
    }


def test_corrupt_download_is_accepted_by_huggingface_hub_but_fails_verification(
    hub: HubServer, sha: str, cache_dir: Path
) -> None:
    hub.set_fault(REPO, "model.safetensors", "corrupt")

    folder = Path(snapshot_download(REPO, cache_dir=cache_dir))  # no checksum check on plain HTTP downloads

    served = (folder / "model.safetensors").read_bytes()
    assert len(served) == 50_000 and served != hub.content(REPO, "model.safetensors")
    result = HfApi().verify_repo_checksums(REPO, cache_dir=cache_dir)
    assert [m["path"] for m in result.mismatches] == ["model.safetensors"]


# ------------------------------------------------------------------------------------------- counters, CLI


def test_throttle_and_concurrent_gets(hub: HubServer, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"model.bin": 40_000})
    hub.throttle_bps = 100_000  # 0.4 s per download
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def download(index: int) -> None:
        start.wait()
        try:
            hf_hub_download(REPO, "model.bin", cache_dir=tmp_path / f"cache-{index}")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=download, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert hub.get_counts[(REPO, "model.bin")] == 3
    assert hub.max_concurrent_gets[(REPO, "model.bin")] == 3


def test_generated_content_is_stable_across_block_boundaries(hub: HubServer) -> None:
    hub.add_repo(REPO, {"big.bin": 3 * MIB + 5})
    whole = hub.content(REPO, "big.bin")
    with httpx2.Client() as client:
        piece = client.get(
            f"{hub.url}/{REPO}/resolve/main/big.bin", headers={"Range": f"bytes={MIB - 7}-{MIB + 6}"}
        )
    assert piece.content == whole[MIB - 7 : MIB + 7]
    assert hashlib.sha256(whole).hexdigest() == hub.sha256(REPO, "big.bin")

    other = HubServer()  # not started: content does not need a running server
    other.add_repo(REPO, {"big.bin": 3 * MIB + 5})
    other.add_repo("acme/other", {"big.bin": 3 * MIB + 5})
    assert other.content(REPO, "big.bin") == whole  # deterministic across servers ...
    assert other.content("acme/other", "big.bin") != whole  # ... and different per repo and path


def test_command_line_server(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    command = [sys.executable, "-m", "tests.hubserver", "--repo", "acme/cli:config.json=10,model.bin=20K"]
    root = Path(__file__).resolve().parent.parent
    with subprocess.Popen(
        command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
            point_huggingface_hub_at(monkeypatch, url)
            folder = Path(snapshot_download("acme/cli", cache_dir=cache_dir))
            assert (folder / "model.bin").stat().st_size == 20 * 1024
        finally:
            process.terminate()
            process.wait(timeout=10)


# ------------------------------------------------------------------------ bytes served, faults, CDN behaviour


def _get(client: httpx2.Client, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and the body bytes that arrived before the response ended, cleanly or not."""
    received = bytearray()
    with client.stream("GET", url, headers=headers) as response:
        try:
            for chunk in response.iter_raw():
                received += chunk
        except httpx2.TransportError:
            pass
    return response.status_code, bytes(received)


def test_bytes_served_counts_full_range_and_cut_bodies(hub: HubServer) -> None:
    hub.add_repo(REPO, {"model.bin": 50_000})
    key = (REPO, "model.bin")
    url = f"{hub.url}/{REPO}/resolve/main/model.bin"
    with httpx2.Client() as client:
        assert client.get(url).status_code == 200
        hub.wait_idle()
        assert hub.bytes_served == {key: 50_000}

        assert client.get(url, headers={"Range": "bytes=10000-"}).status_code == 206
        hub.wait_idle()
        assert hub.bytes_served == {key: 90_000}

        hub.bytes_served.clear()
        assert client.head(url).status_code == 200  # a HEAD has no body
        hub.set_fault(REPO, "model.bin", "rst", cut_at=12_345, times=1)
        _get(client, url)
        hub.wait_idle()
        assert hub.bytes_served == {key: 12_345}  # what the client got of it is lost with the RST

        hub.bytes_served.clear()
        hub.set_fault(REPO, "model.bin", "500", methods=["GET"], times=1)
        assert client.get(url).status_code == 500
        hub.wait_idle()
        assert hub.bytes_served == {}  # no body of the file was started


@pytest.mark.parametrize("kind", ["502", "503", "504", "429"])
def test_gateway_status_faults(hub: HubServer, sha: str, kind: str) -> None:
    hub.set_fault(REPO, "config.json", kind, times=2, retry_after=7)
    url = f"{hub.url}/{REPO}/resolve/main/config.json"
    with httpx2.Client() as client:
        for response in (client.head(url), client.get(url)):  # HEAD and GET by default
            assert response.status_code == int(kind)
            assert response.headers.get("Retry-After") == ("7" if kind in ("429", "503") else None)
        assert client.get(url).content == CONFIG


def test_gateway_faults_in_a_queue_are_retried_by_huggingface_hub(
    hub: HubServer, sha: str, cache_dir: Path, sleeps: list[float]
) -> None:
    hub.set_fault(REPO, "config.json", "502", times=1, methods=["HEAD"])
    hub.set_fault(REPO, "config.json", "503", times=1, retry_after=5, methods=["HEAD"], append=True)
    hub.set_fault(REPO, "config.json", "504", times=1, methods=["HEAD"], append=True)

    path = Path(hf_hub_download(REPO, "config.json", cache_dir=cache_dir))

    assert path.read_bytes() == CONFIG
    assert len(_resolve_calls(hub, "HEAD")) == 4
    assert hub.get_counts == {(REPO, "config.json"): 1}
    # 502: the failed HEAD is retried at once; 503: Retry-After + 1 s; 504: back-off (doubled by then) 2 s
    assert sleeps == [6, 2]


@pytest.mark.parametrize("kind", ["reset", "stall"])
def test_cut_at_cuts_at_an_absolute_offset(hub: HubServer, kind: str) -> None:
    hub.add_repo(REPO, {"model.bin": 50_000})
    hub.stall_seconds = 0.2
    content = hub.content(REPO, "model.bin")
    url = f"{hub.url}/{REPO}/resolve/main/model.bin"
    hub.set_fault(REPO, "model.bin", kind, cut_at=20_000)
    with httpx2.Client(timeout=5) as client:
        assert _get(client, url) == (200, content[:20_000])
        # a resume from the cut (or past it) is cut after half of what remains
        assert _get(client, url, {"Range": "bytes=20000-"}) == (206, content[20_000:35_000])
        assert _get(client, url, {"Range": "bytes=40000-"}) == (206, content[40_000:45_000])
        # a range that ends before the cut is served whole, and the connection stays usable
        assert _get(client, url, {"Range": "bytes=1000-9999"}) == (206, content[1000:10_000])
        assert _get(client, url, {"Range": "bytes=15000-"}) == (206, content[15_000:20_000])
    hub.wait_idle()
    assert hub.bytes_served[(REPO, "model.bin")] == 20_000 + 15_000 + 5_000 + 9_000 + 5_000


def test_corrupt_cut_at_flips_that_byte(hub: HubServer) -> None:
    hub.add_repo(REPO, {"model.bin": 50_000})
    content = hub.content(REPO, "model.bin")
    url = f"{hub.url}/{REPO}/resolve/main/model.bin"
    hub.set_fault(REPO, "model.bin", "corrupt", cut_at=7)
    with httpx2.Client() as client:
        served = client.get(url).content
        assert len(served) == 50_000
        assert [i for i in range(50_000) if served[i] != content[i]] == [7]
        assert served[7] == content[7] ^ 0xFF
        assert client.get(url, headers={"Range": "bytes=5-9"}).content == served[5:10]
        assert client.get(url, headers={"Range": "bytes=8-"}).content == content[8:]  # byte 7 not served

    with pytest.raises(ValueError, match="cut_at"):
        hub.set_fault(REPO, "model.bin", "500", cut_at=10)
    with pytest.raises(ValueError, match="cut_at"):
        hub.set_fault(REPO, "model.bin", "reset", cut_at=-1)


def test_fault_queue_applies_faults_in_turn(hub: HubServer) -> None:
    hub.add_repo(REPO, {"model.bin": 50_000})
    content = hub.content(REPO, "model.bin")
    url = f"{hub.url}/{REPO}/resolve/main/model.bin"
    hub.set_fault(REPO, "model.bin", "reset", cut_at=100, times=2)
    hub.set_fault(REPO, "model.bin", "500", times=1, append=True)
    hub.set_fault(REPO, "model.bin", "corrupt", cut_at=0, times=-1, append=True)
    hub.set_fault(REPO, "model.bin", "404", append=True)  # behind a times=-1 fault: never applies
    with httpx2.Client() as client:
        assert client.head(url).status_code == 200  # the first in line (reset) is for GETs only
        assert _get(client, url) == (200, content[:100])
        assert _get(client, url) == (200, content[:100])
        assert client.head(url).status_code == 500
        for _ in range(3):
            served = client.get(url).content
            assert served[0] == content[0] ^ 0xFF and served[1:] == content[1:]

        hub.set_fault(REPO, "model.bin", "429", times=1)  # append=False replaces the whole queue
        assert client.get(url).status_code == 429
        assert client.get(url).content == content

        hub.set_fault(REPO, "model.bin", "500")
        hub.set_fault(REPO, "model.bin", "reset", append=True)
        hub.set_fault(REPO, None, "503", append=True)
        hub.clear_faults()
        assert client.get(url).content == content


def test_ignore_range_answers_200_with_the_whole_file(hub: HubServer) -> None:
    hub.add_repo(REPO, {"model.bin": 50_000})
    content = hub.content(REPO, "model.bin")
    url = f"{hub.url}/{REPO}/resolve/main/model.bin"
    hub.ignore_range = True
    with httpx2.Client() as client:
        response = client.get(url, headers={"Range": "bytes=100-"})
        assert (response.status_code, response.content) == (200, content)
        assert "Content-Range" not in response.headers
        assert client.get(url, headers={"Range": "bytes=60000-"}).status_code == 200  # no 416 either
        hub.set_fault(REPO, "model.bin", "reset", times=1)  # faults still apply, to the whole file
        assert _get(client, url, {"Range": "bytes=100-"}) == (200, content[:25_000])
        hub.ignore_range = False
        assert client.get(url, headers={"Range": "bytes=100-"}).status_code == 206
    assert hub.range_requests == [
        (REPO, "model.bin", 100),
        (REPO, "model.bin", 100),
        (REPO, "model.bin", 100),
    ]


def test_huggingface_hub_restarts_when_a_resume_gets_the_whole_file(hub: HubServer, cache_dir: Path) -> None:
    hub.add_repo(REPO, {"big.bin": 24 * MIB})
    hub.set_fault(REPO, "big.bin", "reset", cut_at=12 * MIB, times=1)
    hub.ignore_range = True

    path = Path(hf_hub_download(REPO, "big.bin", cache_dir=cache_dir))

    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.sha256(REPO, "big.bin")
    assert hub.range_requests == [(REPO, "big.bin", 10 * MIB)]
    hub.wait_idle()
    assert hub.bytes_served == {(REPO, "big.bin"): 12 * MIB + 24 * MIB}


def test_update_file_makes_a_commit_with_new_bytes(hub: HubServer, sha: str, cache_dir: Path) -> None:
    old = hub.content(REPO, "model.safetensors")
    same_size = hub.update_file(REPO, "model.safetensors", 50_000)
    new = hub.content(REPO, "model.safetensors")
    assert len(new) == 50_000 and new != old
    assert hub.content(REPO, "model.safetensors", sha) == old  # the old commit keeps its content
    assert hub.content(REPO, "config.json") == CONFIG  # other files are kept
    again = hub.update_file(REPO, "model.safetensors", 50_000)
    assert hub.content(REPO, "model.safetensors") not in (old, new)
    as_bytes = hub.update_file(REPO, "config.json", b"{}")
    assert len({sha, same_size, again, as_bytes}) == 4

    refs = HfApi().list_repo_refs(REPO)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": as_bytes}
    with httpx2.Client() as client:
        assert client.get(f"{hub.url}/{REPO}/resolve/{sha}/model.safetensors").content == old
        assert client.get(f"{hub.url}/{REPO}/resolve/{same_size}/model.safetensors").content == new
        assert client.get(f"{hub.url}/{REPO}/resolve/main/config.json").content == b"{}"
    path = Path(hf_hub_download(REPO, "model.safetensors", cache_dir=cache_dir))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.sha256(REPO, "model.safetensors")

    # add_repo also makes a new commit, but a generated file of the same repo, path and size has the same bytes
    hub.add_repo(REPO, FILES)
    assert hub.content(REPO, "model.safetensors") == old
    with pytest.raises(KeyError):
        hub.update_file("acme/nope", "config.json", b"x")
    with pytest.raises(KeyError):
        hub.update_file(REPO, "config.json", b"x", branch="no-such-branch")


def test_throttle_changes_apply_to_a_response_already_streaming(hub: HubServer) -> None:
    hub.add_repo(REPO, {"a.bin": 1_000_000, "b.bin": 100_000})
    with httpx2.Client(timeout=10) as client:
        hub.throttle_bps = 10_000_000
        with client.stream("GET", f"{hub.url}/{REPO}/resolve/main/a.bin") as response:
            chunks = response.iter_raw()
            received = 0
            while received < 900_000:
                received += len(next(chunks))
            hub.throttle_bps = 200_000  # the rest (<= 100 kB) takes ~0.5 s from now, not 5 s from the start
            slowed = time.monotonic()
            received += sum(len(chunk) for chunk in chunks)
            slow_part = time.monotonic() - slowed
        assert received == 1_000_000
        assert 0.2 < slow_part < 2.5

        hub.throttle_bps = 10_000  # 10 s for the whole file
        with client.stream("GET", f"{hub.url}/{REPO}/resolve/main/b.bin") as response:
            chunks = response.iter_raw()
            received = len(next(chunks))
            hub.throttle_bps = None
            sped_up = time.monotonic()
            received += sum(len(chunk) for chunk in chunks)
            assert time.monotonic() - sped_up < 1.5
        assert received == 100_000


# ------------------------------------------------------------------------------- refs, API faults, counters


def _branches_and_tags(api: HfApi) -> tuple[dict[str, str], dict[str, str]]:
    refs = api.list_repo_refs(REPO)
    return {b.name: b.target_commit for b in refs.branches}, {t.name: t.target_commit for t in refs.tags}


def _call(api: HfApi, route: str) -> object:
    """The huggingface_hub call that uses one API route of REPO."""
    if route == "refs":
        return api.list_repo_refs(REPO)
    if route == "info":
        return api.model_info(REPO)
    return list(api.list_repo_tree(REPO))


def test_list_repo_refs_shows_where_update_file_moved_each_branch(hub: HubServer) -> None:
    first = hub.add_repo(REPO, FILES, tags={"v1.0": "main"})
    dev = hub.add_repo(REPO, {"config.json": b"dev"}, branch="dev")
    api = HfApi(endpoint=hub.url)
    assert _branches_and_tags(api) == ({"main": first, "dev": dev}, {"v1.0": first})

    main = hub.update_file(REPO, "config.json", b"{}")
    assert _branches_and_tags(api) == ({"main": main, "dev": dev}, {"v1.0": first})  # the tag stays put
    dev_2 = hub.update_file(REPO, "config.json", b"dev 2", branch="dev")
    assert _branches_and_tags(api) == ({"main": main, "dev": dev_2}, {"v1.0": first})
    assert hub.api_calls("refs", REPO) == 3


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "429"])
@pytest.mark.parametrize("route", ["refs", "info"])
def test_api_status_faults_fail_single_attempt_calls(
    hub: HubServer, sha: str, sleeps: list[float], route: str, kind: str
) -> None:
    hub.set_api_fault(REPO, route, kind)

    with pytest.raises(HfHubHTTPError) as error:
        _call(HfApi(endpoint=hub.url), route)

    assert type(error.value) is HfHubHTTPError and error.value.response.status_code == int(kind)
    assert hub.api_calls(route, REPO) == 1  # list_repo_refs and model_info make one attempt, no back-off
    assert sleeps == []


@pytest.mark.parametrize(
    ("kind", "waits"),
    [("500", [1, 2, 4, 8, 8]), ("502", [1, 2, 4, 8, 8]), ("504", [1, 2, 4, 8, 8]), ("503", [2] * 5), ("429", [2] * 5)],
)
def test_api_status_faults_on_the_tree_are_retried_by_huggingface_hub(
    hub: HubServer, sha: str, sleeps: list[float], kind: str, waits: list[float]
) -> None:
    hub.set_api_fault(REPO, "tree", kind)

    with pytest.raises(HfHubHTTPError) as error:
        _call(HfApi(endpoint=hub.url), "tree")

    assert type(error.value) is HfHubHTTPError and error.value.response.status_code == int(kind)
    assert hub.api_calls("tree", REPO) == 6  # list_repo_tree pages through http_backoff: 1 + 5 retries
    assert sleeps == waits  # back-off, or Retry-After (1 s) + 1 s


@pytest.mark.parametrize("route", ["refs", "info", "tree"])
def test_api_404_fault_looks_like_a_missing_repo(hub: HubServer, sha: str, route: str) -> None:
    hub.set_api_fault(REPO, route, "404")

    for token, status in ((None, 401), ("hf_any", 404)):  # like the Hub: 401 when anonymous
        with pytest.raises(RepositoryNotFoundError) as error:
            _call(HfApi(endpoint=hub.url, token=token), route)
        assert error.value.response.status_code == status
    assert hub.api_calls(route, REPO) == 2


@pytest.mark.parametrize(("kind", "retry_after"), [("429", "7"), ("503", "7"), ("500", None)])
def test_api_429_and_503_send_retry_after(hub: HubServer, sha: str, kind: str, retry_after: str | None) -> None:
    hub.set_api_fault(REPO, "refs", kind, retry_after=7)

    with pytest.raises(HfHubHTTPError) as error:
        HfApi(endpoint=hub.url).list_repo_refs(REPO)

    assert error.value.response.headers.get("Retry-After") == retry_after


def test_api_fault_times_counts_calls(hub: HubServer, sha: str, sleeps: list[float]) -> None:
    api = HfApi(endpoint=hub.url)
    hub.set_api_fault(REPO, "refs", "503", times=1)
    hub.set_api_fault(REPO, "info", "500", times=2)
    hub.set_api_fault(REPO, "tree", "502", times=2)

    with pytest.raises(HfHubHTTPError):
        api.list_repo_refs(REPO)
    assert _branches_and_tags(api) == ({"main": sha}, {})
    with pytest.raises(HfHubHTTPError):
        api.model_info(REPO)
    with pytest.raises(HfHubHTTPError):
        api.model_info(REPO, revision="main")  # /revision/{rev} is the same route
    assert api.model_info(REPO).sha == sha
    assert len(list(api.list_repo_tree(REPO))) == 4  # the two 502s are retried
    assert sleeps == [1, 2]

    assert [hub.api_calls(route, REPO) for route in ("refs", "info", "tree")] == [2, 3, 3]


def test_api_stall_answers_nothing(hub: HubServer, sha: str) -> None:
    hub.stall_seconds = 0.3
    hub.set_api_fault(REPO, "refs", "stall", times=1)
    hub.set_api_fault(REPO, "info", "stall", times=1)
    api = HfApi(endpoint=hub.url)

    started = time.monotonic()
    with pytest.raises(httpx2.RemoteProtocolError):  # no timeout: the server gives up after stall_seconds
        api.list_repo_refs(REPO)
    assert 0.25 < time.monotonic() - started < 3
    with pytest.raises(httpx2.ReadTimeout):
        api.model_info(REPO, timeout=0.1)

    assert _branches_and_tags(api) == ({"main": sha}, {})
    assert api.model_info(REPO).sha == sha


def test_api_faults_are_per_repo_and_route_and_can_be_cleared(hub: HubServer, sha: str) -> None:
    other = "acme/other"
    hub.add_repo(other, {"config.json": b"{}"})
    api = HfApi(endpoint=hub.url)
    hub.set_api_fault(other, "refs", "500")
    hub.set_api_fault(REPO, "tree", "404")

    assert _branches_and_tags(api) == ({"main": sha}, {})  # another repo's fault
    assert api.model_info(other).id == other  # another route's
    hub.clear_faults()
    assert api.list_repo_refs(other).branches
    assert len(list(api.list_repo_tree(REPO))) == 4

    hub.set_api_fault(REPO, "refs", "500")
    hub.set_api_fault(REPO, "refs", "429", times=1)  # replaces the 500
    with pytest.raises(HfHubHTTPError) as error:
        api.list_repo_refs(REPO)
    assert error.value.response.status_code == 429
    assert api.list_repo_refs(REPO).branches

    hub.set_api_fault(other, "refs", "500")
    hub.remove_repo(other)
    hub.add_repo(other, {"config.json": b"{}"})
    assert api.list_repo_refs(other).branches  # remove_repo forgot its faults

    with pytest.raises(ValueError, match="route"):
        hub.set_api_fault(REPO, "commits", "500")
    with pytest.raises(ValueError, match="kind"):
        hub.set_api_fault(REPO, "refs", "reset")


def test_api_calls_counts_requests_by_route_and_repo(hub: HubServer, sha: str, cache_dir: Path) -> None:
    hub.add_repo("acme/other", {"config.json": b"{}"})
    hub.tree_page_size = 2
    api = HfApi(endpoint=hub.url)
    api.list_repo_refs(REPO)
    api.list_repo_refs("acme/other")
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_refs("acme/nope")  # failed calls count too
    api.model_info(REPO)
    api.model_info(REPO, revision=sha)
    list(api.list_repo_tree(REPO, recursive=True))  # 2 folders and 4 files: 3 pages
    hf_hub_download(REPO, "config.json", cache_dir=cache_dir)  # a HEAD and a GET

    assert [hub.api_calls(route, REPO) for route in ("refs", "info", "tree", "resolve")] == [1, 2, 3, 2]
    assert [hub.api_calls("refs"), hub.api_calls("refs", "acme/nope"), hub.api_calls("info", "acme/other")] == [3, 1, 0]
    with pytest.raises(ValueError, match="route"):
        hub.api_calls("commits")

    hub.wait_idle()
    hub.reset_requests()
    assert (hub.requests, hub.range_requests, hub.get_counts, hub.bytes_served) == ([], [], {}, {})
    assert hub.api_calls("refs") == 0
