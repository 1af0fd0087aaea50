"""Resumed downloads: bytes fetched again after a crash, recovery after an outage, the bandwidth cap.

A local Hub (``tests.hubserver.HubServer``, in this process, so its byte counters and faults are at hand)
serves three repos; ``python -m app.cli worker`` processes download them; a Controller in this process
starts the downloads and watches the records.

1. **Crash.** A 512 MiB file (``--quick``: 128 MiB) is served at 128 MiB/s; at 50 % the worker and its
   work-horse are SIGKILLed (the host died); a new worker finishes it. Figure: bytes the Hub served after
   the kill ÷ bytes missing on disk at that moment (goal <= 1.02). Baseline, same run: a bare
   ``snapshot_download`` process killed at 50 % and run again.
2. **Outage.** A 128 MiB file at 32 MiB/s; after 1 s every request is answered 503 (``Retry-After`` absent)
   and open connections are dropped, for 10 s (``--quick``: 5 s). Figure: seconds from the outage's end to
   bytes flowing again (goal <= 2 s + the backoff wait that was pending when it ended). Baseline: a bare
   ``snapshot_download`` through the same outage.
3. **Cap.** ``MODELDEPOT_MAX_BANDWIDTH=50MB`` on a worker, a 400 MB file (``--quick``: 200 MB), the Hub
   unthrottled. Figure: the rate in every 5 s window ÷ the cap (goal 0.95-1.05). Baseline: the same
   download with no cap.

    python bench/bench_resume.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
import redis

from bench.harness import ROOT, Row, print_table, redis_server, wait_for_idle_workers, worker_env
from tests.hubserver import HubServer
from tests.support.waiting import wait_until as wait

MiB = 1 << 20
MB = 1000 * 1000
CAP = 50 * MB
WINDOW_S = 5.0


def served(hub: HubServer, repo: str, path: str = "w.bin") -> int:
    hub.wait_idle(timeout=30)
    return hub.bytes_served.get((repo, path), 0)


@contextlib.contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        kill_tree(proc) if proc.poll() is None else None


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and its work-horse (RQ gives the horse a process group of its own)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def partial_size(models: Path, repo: str) -> int:
    folder = models / f"models--{repo.replace('/', '--')}" / "blobs"
    return sum(p.stat().st_size for p in folder.glob("*.incomplete"))


# ---- 1. crash ------------------------------------------------------------------------------------------


def crash_app(hub: HubServer, controller: Any, env: dict[str, str], tmp: Path, repo: str, size: int) -> float:
    connection = redis.Redis.from_url(env["MODELDEPOT_REDIS_URL"])
    with worker(env, tmp / "crash-1.log") as first:
        wait_for_idle_workers(connection, 1, proc=first)
        controller.download_model(repo)
        wait(lambda: controller.models[repo]["bytes_done"] >= size // 2, 120, "50 %")
        kill_tree(first)
    before = served(hub, repo)
    missing = size - partial_size(Path(env["MODELDEPOT_DATA_DIR"]) / "models", repo)
    with worker(env, tmp / "crash-2.log"):
        wait(lambda: controller.models[repo]["status"] == "ready", 180, "ready after the crash", 0.05)
    connection.close()
    return (served(hub, repo) - before) / missing


_BARE = ("import sys; from huggingface_hub import snapshot_download; "
         "snapshot_download(sys.argv[1], cache_dir=sys.argv[2])")


def crash_bare(hub: HubServer, tmp: Path, repo: str, size: int) -> float:
    cache = tmp / "bare-crash"
    env = {**os.environ, "HF_ENDPOINT": hub.url}
    proc = subprocess.Popen([sys.executable, "-c", _BARE, repo, str(cache)], env=env, start_new_session=True)
    start = served(hub, repo)
    wait(lambda: hub.bytes_served.get((repo, "w.bin"), 0) - start >= size // 2, 120, "bare at 50 %")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = served(hub, repo)
    on_disk = sum(p.stat().st_size for p in cache.rglob("*.incomplete"))
    subprocess.run([sys.executable, "-c", _BARE, repo, str(cache)], env=env, check=True)
    return (served(hub, repo) - before) / (size - on_disk)


# ---- 2. outage -----------------------------------------------------------------------------------------


def outage(hub: HubServer, repo: str, seconds: float, follow: Callable[[], float | None]) -> tuple[float, float]:
    """Start a 503 outage 1 s into the transfer; return (seconds to bytes again, pending backoff at its end)."""
    wait(lambda: hub.bytes_served.get((repo, "w.bin"), 0) > 0, 60, "bytes to flow")
    time.sleep(1.0)
    hub.set_fault(repo, None, "503", retry_after=0)
    hub.drop_connections()
    time.sleep(seconds)
    pending = follow() or 0.0
    mark = served(hub, repo)
    hub.clear_faults()
    ended = time.monotonic()
    wait(lambda: hub.bytes_served.get((repo, "w.bin"), 0) > mark, 120, "bytes after the outage", 0.005)
    return time.monotonic() - ended, pending


def outage_app(hub: HubServer, controller: Any, env: dict[str, str], tmp: Path, repo: str,
               seconds: float) -> tuple[float, float]:
    def pending_wait() -> float | None:
        record = controller.models[repo]
        retry = record.get("retry")
        return max(0.0, retry["next_at"] - time.time()) if retry else None

    with worker(env, tmp / "outage.log"):
        controller.download_model(repo)
        result = outage(hub, repo, seconds, pending_wait)
        wait(lambda: controller.models[repo]["status"] in ("ready", "failed"), 180, "the end", 0.05)
        if controller.models[repo]["status"] != "ready":
            raise RuntimeError(f"outage download ended {controller.models[repo]}")
    return result


def outage_bare(hub: HubServer, tmp: Path, repo: str, seconds: float) -> str:
    """The same outage under a bare snapshot_download in a thread: how it ends."""
    from huggingface_hub import snapshot_download

    outcome: list[str] = []

    def download() -> None:
        started = time.monotonic()
        try:
            snapshot_download(repo, cache_dir=tmp / "bare-outage", endpoint=hub.url)
            outcome.append(f"finished in {time.monotonic() - started:.1f} s")
        except Exception as e:
            outcome.append(f"failed after {time.monotonic() - started:.1f} s ({type(e).__name__})")

    thread = threading.Thread(target=download, daemon=True)
    thread.start()
    wait(lambda: hub.bytes_served.get((repo, "w.bin"), 0) > 0, 60, "bytes to flow")
    time.sleep(1.0)
    hub.set_fault(repo, None, "503", retry_after=0)
    hub.drop_connections()
    thread.join(seconds)
    hub.clear_faults()
    thread.join(180)
    return outcome[0] if outcome else "still running after 3 minutes"


# ---- 3. cap --------------------------------------------------------------------------------------------


def rates(hub: HubServer, controller: Any, env: dict[str, str], tmp: Path, repo: str) -> list[float]:
    """Bytes per second over each 5 s window of the transfer (sampled every 0.1 s from the Hub's counter)."""
    samples: list[tuple[float, int]] = []
    with worker(env, tmp / f"cap-{repo.rsplit('/', 1)[-1]}.log"):
        controller.download_model(repo)
        wait(lambda: hub.bytes_served.get((repo, "w.bin"), 0) > 0, 60, "bytes to flow")
        while controller.models[repo]["status"] not in ("ready", "failed"):
            samples.append((time.monotonic(), hub.bytes_served.get((repo, "w.bin"), 0)))
            time.sleep(0.1)
    windows = []
    for t0, b0 in samples:
        later = [(t, b) for t, b in samples if t >= t0 + WINDOW_S]
        if later:
            t1, b1 = later[0]
            windows.append((b1 - b0) / (t1 - t0))
    if not windows:  # shorter than a window: the whole transfer
        (t0, b0), (t1, b1) = samples[0], samples[-1]
        windows.append((b1 - b0) / (t1 - t0))
    return windows


# ---- the run -------------------------------------------------------------------------------------------


def run(quick: bool) -> bool:
    crash_size = (128 if quick else 512) * MiB
    outage_s = 5.0 if quick else 10.0
    cap_size = (200 if quick else 400) * MB
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as name, HubServer() as hub:
        tmp = Path(name)
        hub.add_repo("bench/crash", {"w.bin": crash_size})
        hub.add_repo("bench/outage", {"w.bin": 128 * MiB})
        hub.add_repo("bench/capped", {"w.bin": cap_size})
        hub.add_repo("bench/uncapped", {"w.bin": cap_size})
        hub.warm_up()
        with redis_server(tmp / "redis") as url:
            from app.core.controller import Controller
            from app.core.settings import Settings

            data = tmp / "data"
            env = worker_env(url, data, hub.url)
            controller = Controller(Settings(redis_url=url, data_dir=data))
            try:
                hub.throttle_bps = 128 * MiB
                crash = crash_app(hub, controller, env, tmp, "bench/crash", crash_size)
                hub.bytes_served.clear()
                bare_crash = crash_bare(hub, tmp, "bench/crash", crash_size)
                hub.throttle_bps = 32 * MiB
                recovered, pending = outage_app(hub, controller, env, tmp, "bench/outage", outage_s)
                hub.bytes_served.clear()
                bare_outage = outage_bare(hub, tmp, "bench/outage", outage_s)
                hub.throttle_bps = None
                capped = rates(hub, controller, {**env, "MODELDEPOT_MAX_BANDWIDTH": "50MB"}, tmp, "bench/capped")
                uncapped = rates(hub, controller, env, tmp, "bench/uncapped")
            finally:
                controller.close()
    return report(quick, crash, bare_crash, recovered, pending, bare_outage, outage_s, capped, uncapped)


def report(quick: bool, crash: float, bare_crash: float, recovered: float, pending: float, bare_outage: str,
           outage_s: float, capped: list[float], uncapped: list[float]) -> bool:
    low, high = min(capped) / CAP, max(capped) / CAP
    goals = [crash <= 1.02, recovered <= 2.0 + pending, low >= 0.95 and high <= 1.05]
    rows = [
        Row("crash at 50 %: bytes served after the kill / bytes missing", f"{crash:.3f}",
            f"{bare_crash:.3f} (bare snapshot_download killed and rerun)", f"{crash / bare_crash:.2f}x", "<= 1.02",
            goals[0]),
        Row(f"{outage_s:g} s of 503s: outage end -> bytes flowing again", f"{recovered:.2f} s",
            f"bare snapshot_download: {bare_outage}", "", f"<= 2 s + pending wait ({pending:.1f} s)", goals[1]),
        Row(f"MODELDEPOT_MAX_BANDWIDTH=50MB: rate per {WINDOW_S:g} s window / cap",
            f"{low:.3f}-{high:.3f} ({len(capped)} windows)",
            f"no cap: {min(uncapped) / MB:.0f}-{max(uncapped) / MB:.0f} MB/s", "", "0.95-1.05", goals[2]),
    ]
    print_table("bench_resume" + (" --quick" if quick else ""), rows)
    return all(goals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller files, a 5 s outage")
    args = parser.parse_args()
    return 0 if run(args.quick) else 1


if __name__ == "__main__":
    raise SystemExit(main())
