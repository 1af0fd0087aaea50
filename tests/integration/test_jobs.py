"""Downloads, removals and cancels as real RQ jobs on forking workers, against the local test hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir
from rq.job import JobStatus

from app.core.controller import Controller
from app.core.settings import Settings
from tests.hubserver import HubServer
from tests.support.waiting import wait_snapshot, wait_status, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow


def _files(models_dir: Path) -> list[Path]:
    return [p for p in models_dir.rglob("*")
            if (p.is_file() or p.is_symlink()) and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"]


def test_download_end_to_end_then_remove(hub: HubServer, start_worker, controller: Controller,
                                         settings_env: Settings) -> None:
    commit = hub.add_repo("org/tiny", {"config.json": b'{"a": 1}', "model.safetensors": 300_000})
    start_worker()
    outcome = controller.download_model("org/tiny", requested_by="alice")
    record = wait_status(controller, "org/tiny", {"ready"})
    assert record["commit"] == commit and record["size_bytes"] >= 300_000
    assert record["files_done"] == record["files_total"] == 2
    assert record["bytes_done"] == record["bytes_total"] == 300_008
    assert record["requested_by"] == "alice" and record["finished_at"] and outcome.job_id
    models_dir = settings_env.resolved_models_dir
    info = scan_cache_dir(models_dir)
    assert [(r.repo_id, [rev.commit_hash for rev in r.revisions]) for r in info.repos] == [("org/tiny", [commit])]
    state_file = settings_env.resolved_state_file
    saved = wait_snapshot(state_file, lambda doc: doc["models"].get("org/tiny", {}).get("status") == "ready")
    wait_until(lambda: json.loads(controller.redis.get(controller.keys.snapshot) or "{}").get("version")
             == saved["version"], 10, "the same snapshot in Redis")

    controller.remove_model("org/tiny")
    wait_until(lambda: "org/tiny" not in controller.models, 20, "removal")
    assert scan_cache_dir(models_dir).repos == frozenset()
    assert "freed" in controller.get_logs()[-1]
    wait_snapshot(state_file, lambda doc: "org/tiny" not in doc["models"])


def test_dedup_and_ready_is_a_noop(hub: HubServer, start_worker, controller: Controller) -> None:
    hub.add_repo("org/dup", {"a.bin": 50_000})
    first = controller.download_model("org/dup")
    second = controller.download_model("org/dup")
    assert second.job_id == first.job_id and not second.changed
    start_worker()
    wait_status(controller, "org/dup", {"ready"})
    again = controller.download_model("org/dup")
    assert not again.changed and "already ready" in again.message
    assert hub.get_counts[("org/dup", "a.bin")] == 1


def test_progress_seen_by_another_process_and_cancel_running(hub: HubServer, start_worker,
                                                             controller: Controller, settings_env: Settings) -> None:
    hub.add_repo("org/slow", {"big.bin": 4_000_000, "small.json": b"{}"})
    hub.throttle_bps = 500_000
    start_worker()
    controller.download_model("org/slow")
    observer = Controller(settings_env)  # a second replica, as another UI process would hold
    try:
        # the small file lands at once, so the first tick has bytes but no speed yet: wait for a measured one
        record = wait_until(lambda: (r := observer.models.get("org/slow")) and r["speed_bps"] > 0
                          and r["status"] == "downloading" and r, 20, "progress with a speed")
        assert 0 < record["bytes_done"] < record["bytes_total"] == 4_000_002
        controller.cancel_download("org/slow")
        wait_status(observer, "org/slow", {"cancelled"}, timeout=20)
    finally:
        observer.close()
    try:
        wait_until(lambda: not _files(settings_env.resolved_models_dir), 10, "partial files to go")
    except AssertionError:
        raise AssertionError(f"left behind: {_files(settings_env.resolved_models_dir)}") from None


def test_cancel_while_queued(hub: HubServer, controller: Controller) -> None:
    hub.add_repo("org/q", {"a.bin": 10})
    controller.download_model("org/q")
    controller.cancel_download("org/q")
    assert controller.models["org/q"]["status"] == "cancelled"
    assert len(controller.jobs.downloads) == 0


def test_killed_work_horse_is_retried_and_completes(hub: HubServer, start_worker, controller: Controller) -> None:
    hub.add_repo("org/crash", {"big.bin": 3_000_000, "a.json": b"{}"})
    hub.throttle_bps = 1_000_000
    worker: WorkerProcess = start_worker()
    controller.download_model("org/crash")
    wait_until(lambda: controller.models["org/crash"]["bytes_done"] > 0, 20, "download to start")
    killed_at = time.monotonic()
    assert worker.kill_horse()
    wait_until(lambda: controller.models["org/crash"]["attempt"] == 2, 30, "the dead job to be noticed")
    assert time.monotonic() - killed_at < 30
    hub.throttle_bps = None
    record = wait_status(controller, "org/crash", {"ready"}, timeout=30)
    assert record["attempt"] == 2
    assert any("died" in line for line in controller.get_logs())


def test_killed_worker_is_recovered_by_another(hub: HubServer, start_worker, controller: Controller) -> None:
    """The next worker's watchdog sees the heartbeat gone and queues attempt 2 as a new job. RQ itself would fail
    the dead job only once its execution expires (job_monitoring_interval + 60 s), long after this test."""
    hub.add_repo("org/crash2", {"big.bin": 3_000_000})
    hub.throttle_bps = 1_000_000
    worker: WorkerProcess = start_worker()
    controller.download_model("org/crash2")
    dead_job = wait_until(lambda: controller.models["org/crash2"]["bytes_done"] > 0
                          and controller.models["org/crash2"]["job_id"], 20, "download to start")
    worker.kill_all()
    hub.throttle_bps = None
    start_worker()
    record = wait_status(controller, "org/crash2", {"ready"}, timeout=45)
    assert record["attempt"] == 2 and record["job_id"] != dead_job, record
    assert controller.jobs.status(dead_job) is not JobStatus.FINISHED  # the dead attempt was not run again
    assert any("the worker downloading org/crash2 died; retrying (attempt 2 of" in line
               for line in controller.get_logs())


@pytest.mark.parametrize(("setup", "name", "reason"), [
    (lambda hub: None, "org/missing", "not found"),
    (lambda hub: hub.add_repo("org/gated", {"a": b"x"}, gated=True), "org/gated", "HF_TOKEN"),
    (lambda hub: hub.add_repo("org/rev", {"a": b"x"}), "org/rev@nope", "revision"),
])
def test_failures_are_data(hub: HubServer, start_worker, controller: Controller, setup, name: str,
                           reason: str) -> None:
    setup(hub)
    start_worker()
    controller.download_model(name)
    record = wait_status(controller, name, {"failed"}, timeout=30)
    assert reason.lower() in record["error"].lower()
    assert "Traceback" not in record["error"]
    assert "failed" in controller.get_logs()[-1]


def test_patterns_matching_nothing_fail(hub: HubServer, start_worker, controller: Controller) -> None:
    hub.add_repo("org/pat", {"a.json": b"{}"})
    start_worker()
    controller.download_model("org/pat", allow_patterns=["*.gguf"])
    record = wait_status(controller, "org/pat", {"failed"})
    assert "*.gguf" in record["error"]


def test_checksum_mismatch_fails_and_deletes_bad_files(hub: HubServer, start_worker, controller: Controller,
                                                       settings_env: Settings) -> None:
    hub.add_repo("org/bad", {"w.bin": 200_000})
    hub.set_fault("org/bad", "w.bin", "corrupt")
    start_worker()
    controller.download_model("org/bad")
    record = wait_status(controller, "org/bad", {"failed"})
    assert "checksum" in record["error"].lower() or "match" in record["error"].lower()
    blobs = settings_env.resolved_models_dir / "models--org--bad" / "blobs"
    assert not [p for p in blobs.iterdir()], "a file that twice failed its checksum is neither published nor kept"
    hub.wait_idle()
    assert hub.get_counts[("org/bad", "w.bin")] == 2  # fetched once more after the first mismatch, then given up
    assert hub.bytes_served[("org/bad", "w.bin")] == 2 * 200_000


def test_adopts_models_already_on_disk(hub: HubServer, start_worker, controller: Controller,
                                       settings_env: Settings) -> None:
    from huggingface_hub import snapshot_download

    commit = hub.add_repo("org/outside", {"config.json": b"{}"})
    snapshot_download("org/outside", cache_dir=settings_env.resolved_models_dir, endpoint=hub.url)
    start_worker()
    record = wait_status(controller, "org/outside", {"ready"}, timeout=20)
    assert record["commit"] == commit and record["requested_by"] == "found on disk"


def test_an_idle_worker_stops_at_once_on_sigterm(start_worker, controller: Controller) -> None:
    """The worker starts RQ's loop again when it quits on an error, but never after a stop was asked for."""
    worker = start_worker()
    worker.wait_alive(controller.redis)
    asked = time.monotonic()
    worker.proc.terminate()
    worker.proc.wait(timeout=10)
    assert time.monotonic() - asked < 5
    assert "starting the worker again" not in worker.log_path.read_text()
