"""workers/hub.py, workers/cache.py and app/validation.py against a real local Hub (tests/hubserver.py).

huggingface_hub's waits are shortened in the ``hf`` fixture: its backoff and resume sleeps (1-8 s, or
``Retry-After`` + 1 s) become 10 ms, the read timeout of file transfers becomes 1 s, and file bodies are
read in 64 kB chunks instead of 10 MB so progress moves within small test files.
"""

from __future__ import annotations

import errno
import importlib
import itertools
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from huggingface_hub import constants, file_download, scan_cache_dir, set_client_factory, snapshot_download
from huggingface_hub.utils._http import default_client_factory

from app.core.errors import (
    DiskFullError,
    GatedRepoError,
    HubNetworkError,
    IntegrityError,
    InvalidInputError,
    InvalidModelNameError,
    JobCancelledError,
    NoMatchingFilesError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from app.core.units import human_bytes
from app.core.validation import parse_model_name, validate_patterns, validate_repo_id, validate_revision
from tests.hubserver import HubServer, point_huggingface_hub_at
from workers.download import cache
from workers.download import hub
from workers.download.hub_errors import hub_errors
from app.core.keys import Keys
from workers.download.plan import DownloadPlan
from workers.download.transfer.claims import PartialClaims
from workers.download.transfer.engine import Transfer, TransferOptions

MODEL_SIZE = 300_000
FILES: dict[str, bytes | int] = {"config.json": b'{"model_type": "test"}', "model.safetensors": MODEL_SIZE}
TOKEN = "hf_secret_test_token_123"


# -- fixtures ---------------------------------------------------------------------------------------------


class _FastClock:
    """Stands in for the ``time`` module of huggingface_hub's HTTP code: sleeps at most 10 ms."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.01))


@pytest.fixture(scope="module")
def server() -> Iterator[HubServer]:
    with HubServer() as running:
        yield running


@pytest.fixture
def hf(server: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The Hub, with huggingface_hub pointed at it and its retry waits shortened."""
    point_huggingface_hub_at(monkeypatch, server.url)
    monkeypatch.setattr(importlib.import_module("huggingface_hub.utils._http"), "time", _FastClock())
    monkeypatch.setattr(file_download, "time", _FastClock())
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    server.stall_seconds = 3
    yield server
    server.clear_faults()
    server.throttle_bps = None
    server.valid_tokens.clear()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def new_repo(
    server: HubServer, files: dict[str, bytes | int] | None = None, **kwargs: Any
) -> tuple[str, str]:
    repo_id = f"org/m-{uuid.uuid4().hex[:8]}"
    return repo_id, server.add_repo(repo_id, files or FILES, **kwargs)


@pytest.fixture
def fetch(redis_client: redis.Redis) -> Callable[..., tuple[DownloadPlan, Path]]:
    """Plan and download a repo as a download job does (the transfer engine itself: tests/test_transfer.py)."""

    def fetch(repo_id: str, models: Path, **kwargs: Any) -> tuple[DownloadPlan, Path]:
        plan = hub.plan_download(repo_id, cache_dir=models, **kwargs)
        claims = PartialClaims(redis_client, Keys("test"), "job", ttl=5)
        transfer = Transfer(plan, cache_dir=models, claims=claims, options=TransferOptions(),
                            **kwargs_for_download(kwargs))
        return plan, transfer.run(lambda _: None)

    return fetch


def kwargs_for_download(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in ("token", "endpoint")}


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


# -- plan ------------------------------------------------------------------------------------------------


def test_plan_lists_commit_files_and_sizes(hf: HubServer, models: Path) -> None:
    repo_id, sha = new_repo(hf, {**FILES, "onnx/model.onnx": 20_000})

    plan = hub.plan_download(repo_id, cache_dir=models)

    assert plan.commit == sha
    assert [(f.path, f.size) for f in plan.files] == [
        ("config.json", len(FILES["config.json"])),  # type: ignore[arg-type]
        ("model.safetensors", MODEL_SIZE),
        ("onnx/model.onnx", 20_000),
    ]
    assert plan.files_total == 3
    assert plan.bytes_total == plan.bytes_needed == MODEL_SIZE + 20_000 + len(FILES["config.json"])  # type: ignore[arg-type]


def test_plan_counts_cached_files_as_not_needed(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, _ = new_repo(hf)
    fetch(repo_id, models, allow_patterns=["*.json"])

    plan = hub.plan_download(repo_id, cache_dir=models)

    assert plan.bytes_needed == MODEL_SIZE
    assert plan.files_needed == 1
    assert {f.path for f in plan.files if f.cached} == {"config.json"}


def test_plan_applies_patterns_and_revisions(hf: HubServer, models: Path) -> None:
    repo_id, first = new_repo(hf, tags=None)
    second = hf.add_repo(repo_id, {**FILES, "extra.bin": 1_000}, tags={"v2": "main"})

    assert [
        f.path for f in hub.plan_download(repo_id, allow_patterns=["*.json"], cache_dir=models).files
    ] == ["config.json"]
    ignored = hub.plan_download(repo_id, ignore_patterns=["*.bin", "*.json"], cache_dir=models)
    assert [f.path for f in ignored.files] == ["model.safetensors"]
    assert hub.plan_download(repo_id, revision=first, cache_dir=models).files_total == 2
    assert hub.plan_download(repo_id, revision="v2", cache_dir=models).commit == second


# -- errors ----------------------------------------------------------------------------------------------


def test_unknown_repo(hf: HubServer, models: Path) -> None:
    with pytest.raises(RepoNotFoundError, match="HF_TOKEN") as caught:
        hub.plan_download("org/does-not-exist", cache_dir=models, token=TOKEN)
    assert "org/does-not-exist" in str(caught.value)
    assert TOKEN not in full_text(caught.value)


def test_gated_repo_needs_a_valid_token(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, _ = new_repo(hf, gated=True)
    hf.valid_tokens.add(TOKEN)

    for token in (None, "hf_wrong_token"):
        with pytest.raises(GatedRepoError, match="HF_TOKEN on the workers") as caught:
            hub.plan_download(repo_id, cache_dir=models, token=token)
        assert "hf_wrong_token" not in full_text(caught.value)

    _, snapshot = fetch(repo_id, models, token=TOKEN)
    assert (snapshot / "model.safetensors").stat().st_size == MODEL_SIZE


def test_unknown_revision(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)

    for revision in ("no-such-branch", "0" * 40):
        with pytest.raises(RevisionNotFoundError, match=r"e\.g\. main"):
            hub.plan_download(repo_id, revision=revision, cache_dir=models)


def test_patterns_matching_nothing_are_named(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)

    with pytest.raises(NoMatchingFilesError, match=r"include '\*\.gguf', 'q4/\*'; exclude '\*\.md'"):
        hub.plan_download(
            repo_id, allow_patterns=["*.gguf", "q4/*"], ignore_patterns=["*.md"], cache_dir=models
        )


def test_hub_failing_after_retries(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)
    hf.set_fault(repo_id, None, "500")

    with pytest.raises(HubNetworkError, match="HTTP 500") as caught:
        hub.plan_download(repo_id, cache_dir=models, token=TOKEN)

    assert hf.url in str(caught.value)
    assert TOKEN not in full_text(caught.value)
    heads = [r for r in hf.requests if r[0] == "HEAD" and repo_id in r[1]]
    assert len(heads) > 2  # huggingface_hub retried before giving up


def test_unreachable_hub_names_the_endpoint_without_credentials(hf: HubServer, models: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://user:hunter2@127.0.0.1:{port}"

    with pytest.raises(HubNetworkError, match=f"http://127.0.0.1:{port}") as caught:
        hub.plan_download("org/name", cache_dir=models, endpoint=endpoint, token=TOKEN)
    assert "hunter2" not in str(caught.value)



def test_disk_full_anywhere_in_the_chain() -> None:
    def fail() -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("wrapped") from e

    with pytest.raises(DiskFullError), hub_errors("org/name"):
        fail()


def test_check_free_space(hf: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo_id, _ = new_repo(hf)
    plan = hub.plan_download(repo_id, cache_dir=models)
    hub.check_free_space(plan, models)

    monkeypatch.setattr(hub, "free_bytes", lambda _: 1_500)
    with pytest.raises(DiskFullError, match=r"needs 300\.0 kB more .* has 1\.5 kB free"):
        hub.check_free_space(plan, models)


def test_stalled_api_call_gives_up_with_configured_timeout(
    hf: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hub.configure_http_client(timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(HubNetworkError, match="Could not reach"):
                hub.plan_download(
                    "org/name", cache_dir=models, endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}"
                )
            assert time.monotonic() - started < 5
        finally:
            set_client_factory(default_client_factory)


# -- download --------------------------------------------------------------------------------------------






# -- verify ----------------------------------------------------------------------------------------------


def test_verify_passes_then_catches_and_deletes_a_corrupted_file(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, sha = new_repo(hf)
    plan, snapshot = fetch(repo_id, models)
    hub.verify(repo_id, sha, cache_dir=models)
    link = snapshot / "model.safetensors"
    blob = link.resolve()
    with blob.open("r+b") as f:  # bit rot on the volume after the download
        f.seek(1000)
        f.write(b"\x00\xff")

    with pytest.raises(IntegrityError, match=r"'model\.safetensors'"):
        hub.verify(repo_id, sha, cache_dir=models)

    assert not os.path.lexists(link) and not blob.exists()
    info = scan_cache_dir(models)
    assert not info.warnings and [r.nb_files for r in info.repos] == [1]
    retry = hub.plan_download(repo_id, cache_dir=models)
    assert retry.bytes_needed == MODEL_SIZE
    fetch(repo_id, models)
    hub.verify(repo_id, sha, cache_dir=models, files=[f.path for f in plan.files])
    assert hf.get_counts[(repo_id, "config.json")] == 1





def test_verify_reports_missing_files(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, sha = new_repo(hf)
    fetch(repo_id, models, allow_patterns=["*.json"])
    hub.verify(repo_id, sha, cache_dir=models)

    with pytest.raises(IntegrityError, match=r"missing: 'model\.safetensors'"):
        hub.verify(repo_id, sha, cache_dir=models, files=["config.json", "model.safetensors"])
    with pytest.raises(IntegrityError, match="not on the models volume"):
        hub.verify(repo_id, "f" * 40, cache_dir=models)


# -- cache -----------------------------------------------------------------------------------------------


def test_delete_revision_frees_what_scan_cache_dir_counts(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, first = new_repo(hf)
    second = hf.add_repo(
        repo_id, {"config.json": b'{"v": 2}', "model.safetensors": MODEL_SIZE, "x.bin": 30_000}
    )
    fetch(repo_id, models, revision=first)
    fetch(repo_id, models)
    folder = cache.repo_dir(repo_id, models)
    before = scan_cache_dir(models).size_on_disk

    freed = cache.delete_revision(repo_id, first, cache_dir=models)

    assert freed == len(FILES["config.json"])  # type: ignore[arg-type]  # the model blob is shared
    assert before - scan_cache_dir(models).size_on_disk == freed
    assert [m.commit for m in cache.scan_models(models)] == [second]

    (folder / "blobs" / "leftover.1234abcd.incomplete").write_bytes(b"x" * 100)
    remaining = scan_cache_dir(models).size_on_disk
    assert cache.delete_revision(repo_id, None, cache_dir=models) == remaining + 100
    assert not folder.exists() and not (models / ".locks" / folder.name).exists()
    assert not scan_cache_dir(models).repos


def test_delete_revision_after_a_plan_only(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)
    hub.plan_download(repo_id, cache_dir=models)  # a dry run writes refs/main, no snapshot
    assert scan_cache_dir(models).warnings

    assert cache.delete_revision(repo_id, None, cache_dir=models) == 0
    assert not cache.repo_dir(repo_id, models).exists()
    assert cache.delete_revision("org/never-downloaded", None, cache_dir=models) == 0


def test_delete_revision_never_leaves_cache_dir(tmp_path: Path, models: Path) -> None:
    outside = tmp_path / "outside"
    commit = "a" * 40
    (outside / "snapshots" / commit).mkdir(parents=True)
    (outside / "blobs").mkdir()
    (outside / "blobs" / "etag").write_text("precious")
    (outside / "snapshots" / commit / "file").symlink_to(outside / "blobs" / "etag")
    (outside / "blobs" / "x.incomplete").write_text("precious")
    models.mkdir()
    (models / "models--org--evil").symlink_to(outside, target_is_directory=True)
    other = "b" * 40
    (outside / "snapshots" / other).mkdir()

    with pytest.raises(InvalidInputError, match="outside the models directory"):
        cache.delete_revision("org/evil", commit, cache_dir=models)
    cache.delete_revision("org/evil", None, cache_dir=models)  # removes the link, not what it points to

    assert (outside / "blobs" / "etag").read_text() == "precious"
    assert (outside / "blobs" / "x.incomplete").read_text() == "precious"
    assert not os.path.lexists(models / "models--org--evil")
    for bad_repo in ("../etc", "org/../../etc", "/etc/passwd", "org/name/x"):
        with pytest.raises(InvalidModelNameError):
            cache.delete_revision(bad_repo, None, cache_dir=models)
    with pytest.raises(InvalidInputError, match="commit id"):
        cache.delete_revision("org/evil", "../../etc", cache_dir=models)


def test_scan_models_adopts_hf_downloads(hf: HubServer, models: Path) -> None:
    repo_id, sha = new_repo(hf)
    snapshot_download(repo_id, cache_dir=models)  # what `hf download --cache-dir` does
    hf.add_repo("legacy", {"config.json": b"{}"})
    snapshot_download("legacy", cache_dir=models)
    dataset = models / "datasets--org--ds" / "snapshots" / ("c" * 40)
    dataset.mkdir(parents=True)
    (dataset / "data.csv").write_text("a,b\n")

    [found] = cache.scan_models(models)

    assert (found.repo_id, found.commit, found.refs, found.nb_files) == (repo_id, sha, ("main",), 2)
    assert (
        found.size_on_disk
        == cache.size_on_disk(repo_id, sha, models)
        == MODEL_SIZE
        + len(
            FILES["config.json"]  # type: ignore[arg-type]
        )
    )
    assert found.last_modified > 0
    assert cache.is_present(repo_id, sha, models)
    assert cache.is_present(repo_id, sha, models, files=["config.json", "model.safetensors"])
    assert not cache.is_present(repo_id, sha, models, files=["config.json", "other.bin"])
    assert not cache.is_present(repo_id, "d" * 40, models)
    assert cache.size_on_disk(repo_id, "d" * 40, models) == 0
    assert cache.scan_models(models / "missing") == []


def test_sweep_incomplete_removes_only_old_partial_files(models: Path) -> None:
    blobs = models / "models--org--a" / "blobs"
    blobs.mkdir(parents=True)
    old, fresh, done = blobs / "e1.aaaa.incomplete", blobs / "e2.bbbb.incomplete", blobs / "e3"
    for path in (old, fresh, done):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(done, (an_hour_ago, an_hour_ago))

    assert cache.sweep_incomplete(models, older_than_s=600) == 1
    assert not old.exists() and fresh.exists() and done.exists()
    assert cache.sweep_incomplete(models / "missing", older_than_s=0) == 0


# -- validation ------------------------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "..",
    "/etc/passwd",
    "org/../../etc",
    "a/b/c",
    "org/name\x00",
    "x" * 10_000,
    "\u043erg/name",  # a Cyrillic o
    "$(rm -rf /)",
    "../*",
    "/abs/*",
    "org/",
    "/name",
    "org//name",
    "org/na me",
    "org/na\tme",
    "org\\name",
    "org/-name",
    "org/name.",
    "org/name--x",
    "org/name.git",
    "org/" + "a" * 97,
    "org/name@",
    "org/name@..",
    "org/name@-x",
    "org/name@/main",
    "org/name@ma in",
    "org/name@a~1",
    "org/name@" + "b" * 256,
    "org/name;rm -rf /",
    "org/name%2F..",
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", ("Qwen/Qwen2.5-0.5B-Instruct", None)),
        ("  org/name \n", ("org/name", None)),
        ("a/b", ("a/b", None)),
        ("org_x/name.v2", ("org_x/name.v2", None)),
        ("org/name@main", ("org/name", "main")),
        ("org/name@v1.0", ("org/name", "v1.0")),
        ("org/name@refs/pr/1", ("org/name", "refs/pr/1")),
        ("org/name@" + "0123456789" * 4, ("org/name", "0123456789" * 4)),
        ("org/" + "a" * 96, ("org/" + "a" * 96, None)),
    ],
)
def test_parse_model_name_accepts(name: str, expected: tuple[str, str | None]) -> None:
    assert parse_model_name(name) == expected


@pytest.mark.parametrize("name", NASTY)
def test_parse_model_name_rejects(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_model_name(name)
    message = str(caught.value)
    assert "e.g." in message
    assert len(message) < 400
    assert "x" * 81 not in message and "b" * 81 not in message
    assert "\x00" not in message and "\t" not in message


def test_model_name_messages() -> None:
    with pytest.raises(
        InvalidModelNameError, match=r"must look like org/name .*e\.g\. Qwen/Qwen2\.5-0\.5B-Instruct"
    ):
        parse_model_name("a/b/c")
    with pytest.raises(InvalidModelNameError, match=r"\\u043erg/name.*non-ASCII"):
        parse_model_name("\u043erg/name")
    with pytest.raises(InvalidInputError, match="Revision") as caught:
        parse_model_name("org/name@a:b")
    assert not isinstance(caught.value, InvalidModelNameError)
    assert validate_repo_id("org/name") == "org/name"


@pytest.mark.parametrize(
    "revision", ["main", "v1.0", "refs/pr/1", "refs/convert/parquet", "release-2024_01", "a" * 40, "x" * 255]
)
def test_validate_revision_accepts(revision: str) -> None:
    assert validate_revision(revision) == revision


@pytest.mark.parametrize(
    "revision",
    [
        "",
        " ",
        "..",
        "a..b",
        "/main",
        "-x",
        ".hidden",
        "ma in",
        "x\x00",
        "a\nb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "x" * 256,
        "main.lock",
        "refs/heads/",
        "a@{1}",
        "refs//x",
        "refs/.x",
        "méin",
    ],
)
def test_validate_revision_rejects(revision: str) -> None:
    with pytest.raises(InvalidInputError, match=r"e\.g\. main"):
        validate_revision(revision)


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (None, None),
        ([], None),
        (["*.safetensors", " config.json "], ["*.safetensors", "config.json"]),
        (["onnx/*", "**/*.json", "model-0000?-of-*.bin"], ["onnx/*", "**/*.json", "model-0000?-of-*.bin"]),
        (["*"] * 50, ["*"] * 50),
    ],
)
def test_validate_patterns_accepts(patterns: list[str] | None, expected: list[str] | None) -> None:
    assert validate_patterns(patterns) == expected


@pytest.mark.parametrize(
    "patterns",
    [
        [""],
        [" "],
        ["../*"],
        ["/abs/*"],
        ["a/../b"],
        ["a/.."],
        ["\\abs"],
        ["C:/x"],
        ["x\x00"],
        ["a\tb"],
        ["a" * 201],
        ["*"] * 51,
        "*.bin",
        [3],
    ],
)
def test_validate_patterns_rejects(patterns: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"e\.g\. \*\.safetensors") as caught:
        validate_patterns(patterns)
    assert "a" * 81 not in str(caught.value)


def test_human_size() -> None:
    assert [human_bytes(n) for n in (0, 999, 1_500, 3_050_002, 12 * 10**9, 5 * 10**15)] == [
        "0 B",
        "999 B",
        "1.5 kB",
        "3.1 MB",
        "12.0 GB",
        "5.0 PB",
    ]
