"""Faults with real processes: worker kills, Redis restarts/loss/outage, hub faults, a full disk."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.core.controller import Controller
from app.core.errors import StateUnavailableError
from app.core.settings import Settings
from tests.hubserver import HubServer
from tests.redis_server import RedisServer
from tests.support.waiting import wait_status, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow


def test_ten_random_worker_kills_every_download_ends(hub: HubServer, start_worker, worker_env,
                                                    controller: Controller) -> None:
    """A kill costs at most the attempt its work-horse was running: with more attempts allowed than there are
    kills, every download must end ready, none failed."""
    kills = 10
    worker_env["MODELDEPOT_MAX_ATTEMPTS"] = str(kills + 1)
    rng = random.Random(7)
    names = [f"org/k{i}" for i in range(6)]
    for name in names:
        hub.add_repo(name, {"w.bin": 1_500_000, "c.json": b"{}"})
    hub.throttle_bps = 3_000_000
    workers: list[WorkerProcess] = [start_worker(), start_worker()]
    for name in names:
        controller.download_model(name)
    started = time.monotonic()
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 1.5))  # the kills' random moments are what this test varies
        victim = workers.pop(rng.randrange(len(workers)))
        victim.kill_all()
        workers.append(start_worker())
    records = [wait_status(controller, name, {"ready", "failed"}, timeout=90) for name in names]
    assert [(r["name"], r["status"], r["error"]) for r in records] == [(name, "ready", None) for name in names]
    assert time.monotonic() - started < 150


def test_redis_restart_with_aof_mid_download_loses_nothing(redis_server: RedisServer, hub: HubServer,
                                                            start_worker, controller: Controller) -> None:
    hub.add_repo("org/r1", {"w.bin": 2_000_000})
    hub.add_repo("org/r2", {"w.bin": 2_000_000})
    hub.throttle_bps = 2_000_000
    start_worker()
    controller.download_model("org/r1")
    controller.download_model("org/r2")
    wait_until(lambda: controller.models["org/r1"]["status"] == "downloading", 20, "a download to start")
    redis_server.restart()
    wait_status(controller, "org/r1", {"ready"}, timeout=60)
    wait_status(controller, "org/r2", {"ready"}, timeout=60)
    assert controller.fetch_models() == Controller(controller.settings, listen=False).fetch_models()


def test_empty_redis_is_rebuilt_from_the_snapshot_and_the_disk(redis_server: RedisServer, hub: HubServer,
                                                                start_worker, controller: Controller,
                                                                settings_env: Settings) -> None:
    hub.add_repo("org/keep", {"w.bin": 100_000})
    hub.add_repo("org/late", {"w.bin": 100_000})
    worker = start_worker()
    controller.download_model("org/keep")
    wait_status(controller, "org/keep", {"ready"})
    controller.download_model("org/late")
    wait_status(controller, "org/late", {"ready"})
    # the snapshot forgets org/late, as if Redis died before the last snapshot reached the disk
    worker.stop()  # after this no hook can still be writing the snapshot
    state_file = settings_env.resolved_state_file
    doc = json.loads(state_file.read_text())
    del doc["models"]["org/late"]
    state_file.write_text(json.dumps(doc))
    redis_server.restart(wipe=True)
    # the running replica notices Redis lost its data and seeds it from the JSON file
    wait_until(lambda: "org/keep" in controller.models and "org/late" not in controller.models, 20, "reseed")
    assert any("state rebuilt from controller_state.json" in line for line in controller.get_logs())
    start_worker()  # adopts what is on disk but not in the snapshot
    wait_status(controller, "org/late", {"ready"}, timeout=30)
    assert controller.models["org/late"]["requested_by"] == "found on disk"


def test_redis_unreachable_for_30s(redis_server: RedisServer, hub: HubServer, start_worker,
                                   controller: Controller) -> None:
    hub.add_repo("org/before", {"w.bin": 10_000})
    hub.add_repo("org/after", {"w.bin": 10_000})
    start_worker()
    controller.download_model("org/before")
    wait_status(controller, "org/before", {"ready"})
    view = controller.fetch_models()
    brief = Controller(controller.settings.model_copy(update={"redis_retry_s": 2.0}), listen=False)
    redis_server.stop()
    try:
        wait_until(lambda: not controller.in_sync, 10, "the replica to know it is stale")
        assert controller.fetch_models() == view  # the UI keeps serving its last view
        asked = time.monotonic()
        with pytest.raises(StateUnavailableError, match="unreachable"):
            brief.download_model("org/after")
        assert 2.0 <= time.monotonic() - asked < 10  # retried for MODELDEPOT_REDIS_RETRY_S, then said so
        time.sleep(30)
        assert controller.fetch_models() == view
    finally:
        redis_server.start()
    wait_until(lambda: controller.in_sync, 30, "the replica to resync")
    controller.download_model("org/after")
    wait_status(controller, "org/after", {"ready"}, timeout=60)


@pytest.mark.parametrize(("kind", "times"), [
    ("500", 3), ("503", 3), ("429", 1), ("reset", 1), ("stall", 1),
])
def test_hub_faults_are_retried_and_nothing_is_fetched_twice(hub: HubServer, start_worker, worker_env,
                                                             controller: Controller, kind: str, times: int) -> None:
    worker_env["MODELDEPOT_STALL_S"] = "2"
    hub.add_repo("org/f", {"w.bin": 4_000_000, "c.json": b"{}"})
    hub.stall_seconds = 8
    cut = {"cut_at": 1 << 20} if kind in ("reset", "stall") else {}
    hub.set_fault("org/f", "w.bin", kind, times=times, retry_after=1, methods=["GET"], **cut)
    start_worker()
    controller.download_model("org/f")
    record = wait_status(controller, "org/f", {"ready", "failed"}, timeout=90)
    assert record["status"] == "ready", record
    hub.wait_idle()
    assert hub.bytes_served[("org/f", "w.bin")] == 4_000_000


def test_a_hub_that_keeps_failing_ends_failed_with_the_cause(hub: HubServer, start_worker, worker_env,
                                                             controller: Controller, settings_env: Settings) -> None:
    worker_env["MODELDEPOT_RETRY_WINDOW_S"] = "3"
    hub.add_repo("org/f", {"w.bin": 400_000, "c.json": b"{}"})
    hub.set_fault("org/f", "w.bin", "500", methods=["GET"])
    start_worker()
    controller.download_model("org/f")
    record = wait_status(controller, "org/f", {"failed"}, timeout=60)
    assert "HTTP 500" in record["error"] and "Retry" in record["error"] and "Traceback" not in record["error"]
    assert record["retry"] is None


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_models_dir(settings_env: Settings) -> Path:
    path = settings_env.resolved_models_dir
    if not _mount_tmpfs(path, "40m"):
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must be able to mount a tmpfs for the disk-full tests")
        pytest.skip("needs root to mount a small tmpfs as the models dir")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_fails_fast_with_figures(small_models_dir: Path, hub: HubServer, start_worker,
                                           controller: Controller) -> None:
    hub.add_repo("org/huge", {"w.bin": 100_000_000})
    start_worker()
    controller.download_model("org/huge")
    record = wait_status(controller, "org/huge", {"failed"})
    assert "free" in record["error"] and "MB" in record["error"]


def test_disk_filling_during_download_fails_cleanly(small_models_dir: Path, hub: HubServer, start_worker,
                                                    controller: Controller) -> None:
    # the volume fills mid-file; the partial stays, and Retry resumes it once space is freed
    hub.add_repo("org/fill", {"w.bin": 30_000_000})
    hub.throttle_bps = 8_000_000
    start_worker()
    controller.download_model("org/fill")
    wait_until(lambda: controller.models["org/fill"]["bytes_done"] > 0, 20, "download to start")
    filler = small_models_dir / "filler"
    with open(filler, "wb", buffering=0) as f:  # take every free byte left on the volume
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    record = wait_status(controller, "org/fill", {"failed"}, timeout=30)
    assert "space" in record["error"].lower() or "disk" in record["error"].lower()
    [partial] = small_models_dir.glob("*/blobs/*.incomplete")  # kept: the bytes are good, only the disk was full
    kept = partial.stat().st_size
    assert kept > 0
    filler.unlink()
    hub.throttle_bps = None
    hub.wait_idle()
    before = hub.bytes_served[("org/fill", "w.bin")]

    controller.retry_download("org/fill")
    wait_status(controller, "org/fill", {"ready"}, timeout=60)
    hub.wait_idle()
    assert hub.bytes_served[("org/fill", "w.bin")] - before == 30_000_000 - kept
