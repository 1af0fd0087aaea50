"""workers/transfer against the real local Hub (tests/hubserver.py) and a real Redis (the partial claims).

Every test asserts how many bytes the Hub served for the file, not only that it ended up right: a resumed
transfer must not fetch again what is already on disk.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from huggingface_hub import HfApi, constants, scan_cache_dir

from app.core.errors import DiskFullError, DownloadError, HubNetworkError, IntegrityError, JobCancelledError
from app.core.keys import Keys
from tests.hubserver import HubServer
from tests.support.hub import serving
from workers.download import cache, hub
from workers.download.plan import DownloadPlan
from workers.download.transfer.claims import PartialClaims
from workers.download.transfer.engine import Progress, Transfer, TransferOptions
from workers.download.transfer.retry import Backoff

MB = 1 << 20
FAST = TransferOptions(stall_s=1.0, retry_window_s=20.0, backoff=Backoff(base_s=0.05, cap_s=0.2))


@pytest.fixture
def hf(module_hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The module's Hub; unlike conftest.py's ``hf``, huggingface_hub keeps its own waits (the engine retries)."""
    # the engine sets these for its process; restore them for the tests that follow
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", constants.DOWNLOAD_CHUNK_SIZE)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", constants.HF_HUB_DOWNLOAD_TIMEOUT)
    with serving(module_hub, monkeypatch, stall_seconds=5) as server:
        yield server


def new_repo(server: HubServer, files: dict[str, bytes | int]) -> tuple[str, str]:
    repo_id = f"org/t-{uuid.uuid4().hex[:8]}"
    return repo_id, server.add_repo(repo_id, files)


def run(plan: DownloadPlan, models: Path, client: redis.Redis, *, options: TransferOptions = FAST,
        owner: str = "job-1", on_progress: Any = None) -> Path:
    claims = PartialClaims(client, Keys("test"), owner, ttl=3)
    return Transfer(plan, cache_dir=models, claims=claims, options=options).run(
        on_progress or (lambda _: None), poll_interval=0.05)


def served(server: HubServer, repo_id: str, path: str) -> int:
    server.wait_idle()
    return server.bytes_served.get((repo_id, path), 0)


def partial_of(models: Path, repo_id: str) -> list[Path]:
    return sorted((cache.repo_dir(repo_id, models) / "blobs").glob("*.incomplete"))


def fail_after_one_mib(hf: HubServer, repo_id: str, models: Path, client: redis.Redis) -> Path:
    """A download of ``w.bin`` that got 1 MiB, then only 503s until its retry window ran out; its partial."""
    hf.set_fault(repo_id, "w.bin", "reset", times=1, cut_at=MB)
    hf.set_fault(repo_id, "w.bin", "503", times=-1, append=True, methods=["GET"])
    with pytest.raises(HubNetworkError):
        run(hub.plan_download(repo_id, cache_dir=models), models, client,
            options=TransferOptions(retry_window_s=0.5, backoff=Backoff(0.05, 0.1)))
    hf.clear_faults()
    [partial] = partial_of(models, repo_id)
    assert partial.stat().st_size == MB
    return partial


def verified(repo_id: str, commit: str, models: Path) -> None:
    result = HfApi().verify_repo_checksums(repo_id, revision=commit, cache_dir=models)
    assert not result.mismatches and not result.missing_paths, result
    assert not scan_cache_dir(models).warnings


# -- layout and progress ---------------------------------------------------------------------------------


def test_lays_files_out_as_huggingface_hub_does(hf: HubServer, models: Path, redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"config.json": b"{}", "sub/model.safetensors": 2 * MB})
    plan = hub.plan_download(repo_id, cache_dir=models)
    hf.throttle_bps = 8 * MB
    seen: list[Progress] = []

    snapshot = run(plan, models, redis_client, on_progress=seen.append)

    assert snapshot == cache.snapshot_dir(repo_id, sha, models)
    verified(repo_id, sha, models)
    repo = scan_cache_dir(models).repos
    assert [(r.repo_id, [(rev.commit_hash, sorted(rev.refs)) for rev in r.revisions]) for r in repo] == [
        (repo_id, [(sha, ["main"])])]
    assert (snapshot / "sub/model.safetensors").is_symlink() and not partial_of(models, repo_id)
    assert seen[-1] == Progress(plan.bytes_total, plan.bytes_total, 2, 2)
    assert all(a.bytes_done <= b.bytes_done and a.files_done <= b.files_done for a, b in itertools.pairwise(seen))
    assert any(0 < p.bytes_done < plan.bytes_total for p in seen)
    assert served(hf, repo_id, "sub/model.safetensors") == 2 * MB


def test_a_blob_already_on_the_volume_is_linked_not_fetched(hf: HubServer, models: Path,
                                                            redis_client: redis.Redis) -> None:
    repo_id, first = new_repo(hf, {"a.bin": MB, "b.bin": MB})
    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)
    second = hf.update_file(repo_id, "b.bin", MB)  # a new commit: a.bin's blob is shared with the first

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    assert served(hf, repo_id, "a.bin") == MB and served(hf, repo_id, "b.bin") == 2 * MB
    verified(repo_id, first, models)
    verified(repo_id, second, models)


# -- retries ---------------------------------------------------------------------------------------------


def test_reset_connection_then_503s_resume_without_fetching_twice(hf: HubServer, models: Path,
                                                                  redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": 8 * MB})
    hf.set_fault(repo_id, "w.bin", "rst", times=1, cut_at=3 * MB)
    hf.set_fault(repo_id, "w.bin", "503", times=2, append=True, methods=["GET"])
    plan = hub.plan_download(repo_id, cache_dir=models)
    seen: list[Progress] = []

    run(plan, models, redis_client, on_progress=seen.append)

    verified(repo_id, sha, models)
    # the first answer sent 3 MB; a RST drops what was in flight, so what reached the disk varies (under load,
    # maybe nothing): the next request starts there, and after the reset the Hub serves exactly the rest
    resumed_at = ([start for repo, path, start in hf.range_requests if repo == repo_id] or [0])[-1]
    assert 0 <= resumed_at <= 3 * MB
    assert served(hf, repo_id, "w.bin") - 3 * MB == 8 * MB - resumed_at
    causes = [p.retry.cause for p in seen if p.retry is not None]
    assert "HTTP 503" in causes


@pytest.mark.parametrize("kind", ["reset", "stall", "500", "429", "502"])
def test_transient_faults_are_retried_from_the_bytes_on_disk(hf: HubServer, models: Path,
                                                             redis_client: redis.Redis, kind: str) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": 4 * MB})
    cut = {"cut_at": 1 * MB} if kind in ("reset", "stall") else {}
    hf.set_fault(repo_id, "w.bin", kind, times=2, retry_after=0, methods=["GET"], **cut)

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    verified(repo_id, sha, models)
    assert served(hf, repo_id, "w.bin") == 4 * MB  # a FIN or a silence loses nothing in flight


def test_an_outage_longer_than_the_window_fails_and_keeps_the_bytes(hf: HubServer, models: Path,
                                                                    redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": 4 * MB})
    hf.set_fault(repo_id, "w.bin", "reset", times=1, cut_at=MB)
    hf.set_fault(repo_id, "w.bin", "503", times=-1, append=True, methods=["GET"])
    plan = hub.plan_download(repo_id, cache_dir=models)
    short = TransferOptions(stall_s=1.0, retry_window_s=1.5, backoff=Backoff(base_s=0.05, cap_s=0.2))

    started = time.monotonic()
    with pytest.raises(HubNetworkError, match=r"no data for \d+ s despite retries \(last: HTTP 503\)"):
        run(plan, models, redis_client, options=short)
    assert time.monotonic() - started < 10
    [partial] = partial_of(models, repo_id)
    assert partial.stat().st_size == MB

    hf.clear_faults()
    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)
    verified(repo_id, sha, models)
    assert served(hf, repo_id, "w.bin") == 4 * MB


def test_a_server_ignoring_range_restarts_the_file_cleanly(hf: HubServer, models: Path,
                                                           redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": 4 * MB})
    hf.set_fault(repo_id, "w.bin", "reset", times=1, cut_at=MB)
    hf.ignore_range = True

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    verified(repo_id, sha, models)
    assert served(hf, repo_id, "w.bin") == MB + 4 * MB


def test_content_that_changed_on_the_hub_starts_clean(hf: HubServer, models: Path,
                                                      redis_client: redis.Redis) -> None:
    repo_id, _ = new_repo(hf, {"w.bin": 4 * MB})
    old_partial = fail_after_one_mib(hf, repo_id, models, redis_client)
    new_commit = hf.update_file(repo_id, "w.bin", 4 * MB)

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    verified(repo_id, new_commit, models)
    assert served(hf, repo_id, "w.bin") == MB + 4 * MB  # the new content from its first byte
    assert old_partial.exists()  # another etag: the job (not the engine) discards it once no record owns it


# -- integrity -------------------------------------------------------------------------------------------


def test_corrupt_bytes_are_caught_before_publishing_and_fetched_once_more(hf: HubServer, models: Path,
                                                                         redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": 2 * MB, "c.json": b'{"a": 1}'})
    hf.set_fault(repo_id, "w.bin", "corrupt", times=1)

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    verified(repo_id, sha, models)
    assert served(hf, repo_id, "w.bin") == 2 * 2 * MB


def test_corrupt_twice_fails_with_the_integrity_message(hf: HubServer, models: Path,
                                                        redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": MB, "c.json": b'{"a": 1}'})
    hf.set_fault(repo_id, "w.bin", "corrupt")

    with pytest.raises(IntegrityError, match=r"'w\.bin'"):
        run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    assert served(hf, repo_id, "w.bin") == 2 * MB
    snapshot = cache.snapshot_dir(repo_id, sha, models)
    assert not os.path.lexists(snapshot / "w.bin") and not partial_of(models, repo_id)
    assert not [p for p in (cache.repo_dir(repo_id, models) / "blobs").iterdir() if p.stat().st_size == MB]


def test_a_partial_is_hashed_from_disk_when_resumed(hf: HubServer, models: Path, redis_client: redis.Redis) -> None:
    """A partial whose bytes were damaged on disk between attempts is caught by the hash and refetched."""
    repo_id, sha = new_repo(hf, {"w.bin": 2 * MB})
    partial = fail_after_one_mib(hf, repo_id, models, redis_client)
    with partial.open("r+b") as f:
        f.write(b"\xff" * 16)

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    verified(repo_id, sha, models)
    assert served(hf, repo_id, "w.bin") == MB + MB + 2 * MB  # cut, the rest, then the whole file again


# -- stopping, sharing, pacing ---------------------------------------------------------------------------


def test_a_raising_progress_callback_stops_every_file_and_keeps_the_partials(
        hf: HubServer, models: Path, redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"a.bin": 3 * MB, "b.bin": 3 * MB})
    hf.throttle_bps = 2 * MB
    plan = hub.plan_download(repo_id, cache_dir=models)

    def cancel_once_bytes_flow(progress: Progress) -> None:
        if progress.bytes_done > MB:
            raise JobCancelledError("cancelled by a user")

    started = time.monotonic()
    with pytest.raises(JobCancelledError):
        run(plan, models, redis_client, on_progress=cancel_once_bytes_flow)
    assert time.monotonic() - started < 5
    kept = sum(p.stat().st_size for p in partial_of(models, repo_id))
    assert kept > MB
    hf.throttle_bps = None
    before = served(hf, repo_id, "a.bin") + served(hf, repo_id, "b.bin")  # socket buffers count here too

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client)

    verified(repo_id, sha, models)
    assert served(hf, repo_id, "a.bin") + served(hf, repo_id, "b.bin") - before == 6 * MB - kept


def test_two_downloads_of_one_file_never_write_one_partial(hf: HubServer, models: Path,
                                                           redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": 4 * MB})
    hf.throttle_bps = 8 * MB
    plan = hub.plan_download(repo_id, cache_dir=models)
    errors: list[BaseException] = []

    def download(owner: str) -> None:
        try:
            run(plan, models, redis_client, owner=owner)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=download, args=(f"job-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert not errors
    verified(repo_id, sha, models)
    assert hf.max_concurrent_gets[(repo_id, "w.bin")] == 1
    assert served(hf, repo_id, "w.bin") == 4 * MB


def test_bandwidth_cap_is_never_exceeded(hf: HubServer, models: Path, redis_client: redis.Redis) -> None:
    """Only the upper bound is asserted here (a busy machine can only slow it); bench_resume.py measures the
    achieved rate against the cap."""
    repo_id, sha = new_repo(hf, {"w.bin": 6 * MB})
    capped = TransferOptions(max_bandwidth=4 * MB, backoff=Backoff(0.05, 0.2))

    started = time.monotonic()
    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client, options=capped)
    elapsed = time.monotonic() - started

    verified(repo_id, sha, models)
    assert 6 * MB / elapsed <= 4 * MB * 1.1


def test_max_files_limits_files_in_flight(hf: HubServer, models: Path, redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {f"{i}.bin": MB for i in range(4)})
    hf.throttle_bps = 4 * MB
    in_flight: list[int] = []

    def count(_: Progress) -> None:
        in_flight.append(sum(1 for t in threading.enumerate() if t.name.startswith("transfer")))

    run(hub.plan_download(repo_id, cache_dir=models), models, redis_client, on_progress=count,
        options=TransferOptions(max_files=2, backoff=Backoff(0.05, 0.2)))

    verified(repo_id, sha, models)
    assert max(in_flight) <= 2


# -- the disk --------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "tiny"
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must be able to mount a tmpfs for the disk-full tests")
        pytest.skip("needs root to mount a small tmpfs")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_mid_file_keeps_the_partial_and_resumes_after_space_is_freed(
        hf: HubServer, tiny_volume: Path, redis_client: redis.Redis) -> None:
    repo_id, sha = new_repo(hf, {"w.bin": 5 * MB})
    plan = hub.plan_download(repo_id, cache_dir=tiny_volume)

    with pytest.raises(DiskFullError, match="ran out of space"):
        run(plan, tiny_volume, redis_client)
    [partial] = partial_of(tiny_volume, repo_id)
    kept = partial.stat().st_size
    assert 0 < kept < 5 * MB

    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_volume)], check=True)
    run(hub.plan_download(repo_id, cache_dir=tiny_volume), tiny_volume, redis_client)

    verified(repo_id, sha, tiny_volume)
    resumed_at = [start for repo, path, start in hf.range_requests if repo == repo_id]
    assert resumed_at == [kept]


# -- Xet -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "http"])
def test_xet_backed_files_come_over_resumable_http(hf: HubServer, models: Path, redis_client: redis.Redis,
                                                   mode: str) -> None:
    """Most Hub repos announce Xet; ``auto`` and ``http`` still take the resumable, hashed, capped HTTP path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    repo_id, sha = new_repo(hf, {"w.bin": 2 * MB})
    hf.xet = True
    try:
        assert get_hf_file_metadata(hf_hub_url(repo_id, "w.bin", revision=sha)).xet_file_data is not None
        hf.set_fault(repo_id, "w.bin", "reset", times=1, cut_at=MB)

        run(hub.plan_download(repo_id, cache_dir=models), models, redis_client,
            options=TransferOptions(mode=mode, backoff=Backoff(0.05, 0.2)))
    finally:
        hf.xet = False

    verified(repo_id, sha, models)
    assert served(hf, repo_id, "w.bin") == 2 * MB


def test_xet_mode_without_hf_xet_says_what_to_do(hf: HubServer, models: Path, redis_client: redis.Redis) -> None:
    repo_id, _ = new_repo(hf, {"w.bin": MB})
    hf.xet = True  # HF_HUB_DISABLE_XET is set by the fixture, so hf_xet cannot be used
    try:
        with pytest.raises(DownloadError, match="MODELDEPOT_TRANSFER=xet, but hf_xet cannot be used"):
            run(hub.plan_download(repo_id, cache_dir=models), models, redis_client,
                options=TransferOptions(mode="xet"))
    finally:
        hf.xet = False
    assert served(hf, repo_id, "w.bin") == 0


@pytest.mark.parametrize("etag", ["../../models--other--repo/blobs/x", "a/b", "..", "", ".hidden", "x" * 200])
def test_an_etag_that_is_no_plain_name_is_refused(etag: str) -> None:
    from workers.download.transfer.engine import checked_etag

    with pytest.raises(DownloadError, match="not a plain name"):
        checked_etag(etag, "org/name")


def test_a_file_path_from_the_hub_cannot_leave_the_snapshot(tmp_path: Path) -> None:
    from app.core.errors import InvalidInputError

    for path in ("../../../etc/passwd", "/etc/passwd", "a//b", "a/./b"):
        with pytest.raises(InvalidInputError):
            cache.file_in_snapshot(tmp_path, path)
    assert cache.file_in_snapshot(tmp_path, "sub/model.safetensors") == tmp_path / "sub/model.safetensors"
