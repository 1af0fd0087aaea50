"""Download throughput: Model Depot's worker vs a bare ``snapshot_download`` of the same repo.

A local Hub (``python -m tests.hubserver``, its own process) serves one repo: ``--layout one-gib``, 8 generated
files of 128 MiB (1 GiB; ``--quick``: 32 MiB each), or ``--layout mixed``, one 256 MiB shard, four of 48 MiB and
15 small files (``--quick``: a quarter); without ``--layout`` both run, one after the other.
One ``python -m app.cli worker`` is started and left idle.
Model Depot's figure is the time from ``Controller.download_model`` until the bench process's replica shows
the record ``ready``; the baseline is ``huggingface_hub.snapshot_download(repo, cache_dir=<fresh dir>,
endpoint=<hub>)`` called in the bench process. After one untimed bare warm-up run, runs alternate: app,
bare, cold, bare, app (``--quick``: bare, app, cold); between app runs the model is removed through the
controller. Goal: app / bare <= 1.05 (medians).

The app run is split using the record's own timestamps (written by the worker) and the blob files' mtimes:
queued -> claimed (dispatch), claimed -> plan written (dry run), -> last blob written (transfer), -> ready
(size, success hook, snapshot save: the worker hashed each file while writing it, see workers/transfer/).
The bare run is followed by a timed
``HfApi.verify_repo_checksums`` of its cache, to show what the verification step costs on its own, and one
more bare run is the first call of a fresh process (what a forked work-horse meets: a cold HTTP client, a
heap that has not grown yet).

    python bench/bench_download.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the worker's bars draw nothing either
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from bench.harness import (
    ROOT,
    Row,
    median,
    process,
    redis_server,
    stop_process,
    wait_for_idle_workers,
    worker_env,
)

GOAL = 1.05
MiB = 1 << 20
KiB = 1 << 10


@dataclass(frozen=True)
class Layout:
    """A repo to benchmark: its name and its files (path -> size)."""

    repo: str
    files: dict[str, int]
    label: str

    @property
    def size(self) -> int:
        return sum(self.files.values())


def one_gib(quick: bool) -> Layout:
    each = (32 if quick else 128) * MiB
    files = {f"model-{i + 1:05d}-of-00008.safetensors": each for i in range(8)}
    return Layout("bench/one-gib", files, f"{8 * each / (1 << 30):g} GiB (8 x {each // MiB} MiB)")


def mixed(quick: bool) -> Layout:
    """A model as the Hub has them: one big shard, a few mid-size ones, many small text files."""
    scale = 4 if quick else 1
    files = {"model-00001-of-00005.safetensors": 256 * MiB // scale}
    files |= {f"model-0000{i}-of-00005.safetensors": 48 * MiB // scale for i in range(2, 6)}
    files |= {f"config-{i}.json": (i + 1) * 700 for i in range(12)}
    files |= {"tokenizer.json": 7 * MiB // scale, "vocab.txt": 900 * KiB, "merges.txt": 450 * KiB}
    total = sum(files.values())
    return Layout("bench/mixed", files, f"mixed {total / MiB:.0f} MiB (1 big, 4 mid, {len(files) - 5} small)")


LAYOUTS = {"one-gib": one_gib, "mixed": mixed}


@dataclass
class AppRun:
    total: float
    phases: dict[str, float] = field(default_factory=dict)


# ---- servers -------------------------------------------------------------------------------------------


def start_hub(layout: Layout, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The fake Hub as a child process (it hashes its files before printing its URL)."""
    files = ",".join(f"{name}={size}" for name, size in layout.files.items())
    args = [sys.executable, "-m", "tests.hubserver", "--port", "0", "--repo", f"{layout.repo}:{files}"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        stop_process(proc)
        raise RuntimeError(f"hubserver did not start: {log_path.read_text()[-2000:]}")
    return proc, url


# ---- the two ways to download --------------------------------------------------------------------------


def bare_run(repo: str, hub_url: str, scratch: Path) -> tuple[float, float]:
    """Seconds of snapshot_download into a fresh cache, then seconds of verify_repo_checksums on it."""
    from huggingface_hub import HfApi, snapshot_download

    cache_dir = scratch / f"bare-{time.monotonic_ns()}"
    started = time.monotonic()
    snapshot_download(repo, cache_dir=cache_dir, endpoint=hub_url)
    took = time.monotonic() - started
    started = time.monotonic()
    result = HfApi(endpoint=hub_url).verify_repo_checksums(repo, cache_dir=cache_dir)
    verify = time.monotonic() - started
    assert not result.mismatches, result.mismatches
    shutil.rmtree(cache_dir)
    return took, verify


_COLD = """
import sys, time
from huggingface_hub import snapshot_download
started = time.monotonic()
snapshot_download(sys.argv[1], cache_dir=sys.argv[2], endpoint=sys.argv[3])
print(time.monotonic() - started)
"""


def cold_run(repo: str, hub_url: str, scratch: Path) -> float:
    """Seconds of snapshot_download as the first call of a fresh process (imports not counted), the way a
    forked RQ work-horse meets it: no warm HTTP client, no grown heap."""
    cache_dir = scratch / f"cold-{time.monotonic_ns()}"
    done = subprocess.run(
        [sys.executable, "-c", _COLD, repo, str(cache_dir), hub_url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
        timeout=170,
    )
    shutil.rmtree(cache_dir)
    return float(done.stdout.strip())


def app_run(repo: str, controller: Any, models_dir: Path, timeout: float) -> AppRun:
    """download_model -> ready in this process's replica, then remove the model again."""
    requested = time.time()
    started = time.monotonic()
    controller.download_model(repo, requested_by="bench")
    record = wait_status(controller, repo, {"ready", "failed", "cancelled"}, timeout)
    total = time.monotonic() - started
    if record["status"] != "ready":
        raise RuntimeError(f"download ended {record['status']}: {record.get('error')}")
    run = AppRun(total, split(repo, controller, requested, record, models_dir))
    controller.remove_model(repo, requested_by="bench")
    wait_status(controller, repo, {"gone"}, 60)
    return run


def wait_status(controller: Any, name: str, wanted: set[str], timeout: float) -> dict[str, Any]:
    """Poll the replica (every 2 ms) until the record's status is in ``wanted`` ("gone": no record)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = controller.models.get(name)
        status = record["status"] if record else "gone"
        if status in wanted:
            return record or {}
        time.sleep(0.002)
    raise TimeoutError(f"{name} did not become {wanted} within {timeout}s: {controller.models.get(name)}")


def split(repo: str, controller: Any, requested: float, ready: dict[str, Any], models_dir: Path) -> dict[str, float]:
    """Phase durations from the events of this run (stream) and the blob mtimes."""
    events = controller.redis.xrange(controller.keys.events_stream, min=f"{int(requested * 1000)}-0")
    claimed = planned = None
    for _, fields in events:
        event = json.loads(fields[b"event"])
        record = event.get("record") or {}
        if event.get("name") != repo or record.get("job_id") != ready["job_id"]:
            continue
        if claimed is None and record.get("status") == "downloading":
            claimed = record["updated_at"]
        elif planned is None and claimed is not None and record.get("bytes_total"):
            planned = record["updated_at"]
    blobs = list((models_dir / f"models--{repo.replace('/', '--')}" / "blobs").iterdir())
    transferred = max(blob.stat().st_mtime for blob in blobs)
    if claimed is None or planned is None:
        return {}
    return {
        "queued -> claimed": claimed - requested,
        "claimed -> planned (dry run)": planned - claimed,
        "planned -> last byte on disk": transferred - planned,
        "last byte -> ready (hooks, snapshot)": ready["finished_at"] - transferred,
    }


# ---- the run -------------------------------------------------------------------------------------------


def run(quick: bool, layout: Layout) -> bool:
    order = ["bare", "app", "cold"] if quick else ["app", "bare", "cold", "bare", "app"]
    with tempfile.TemporaryDirectory(prefix="bench-dl-") as tmp_name:
        tmp = Path(tmp_name)
        hub, hub_url = start_hub(layout, tmp / "hub.log")
        try:
            with redis_server(tmp / "redis") as url:
                results = measure(layout.repo, url, hub_url, tmp, order, timeout=60 if quick else 170)
        finally:
            stop_process(hub)
    return report(quick, layout, *results)


def measure(
    repo: str, url: str, hub_url: str, tmp: Path, order: list[str], timeout: float
) -> tuple[list[AppRun], list[float], list[float], list[float]]:
    from app.core.controller import Controller
    from app.core.settings import Settings

    data_dir = tmp / "data"
    env = worker_env(url, data_dir, hub_url)
    with process([sys.executable, "-m", "app.cli", "worker"], env, tmp / "worker.log") as worker:
        connection = redis.Redis.from_url(url)
        wait_for_idle_workers(connection, 1, proc=worker, log_path=tmp / "worker.log")
        controller = Controller(Settings(redis_url=url, data_dir=data_dir))
        apps: list[AppRun] = []
        bares: list[float] = []
        verifies: list[float] = []
        colds: list[float] = []
        try:
            bare_run(repo, hub_url, tmp)  # warm-up, not counted: first connections, the hub's block pools
            for kind in order:
                if kind == "app":
                    apps.append(app_run(repo, controller, data_dir / "models", timeout))
                    wait_for_idle_workers(connection, 1, proc=worker)
                elif kind == "cold":
                    colds.append(cold_run(repo, hub_url, tmp))
                else:
                    took, verify = bare_run(repo, hub_url, tmp)
                    bares.append(took)
                    verifies.append(verify)
        finally:
            controller.close()
            connection.close()
    return apps, bares, verifies, colds


def report(
    quick: bool, layout: Layout, apps: list[AppRun], bares: list[float], verifies: list[float], colds: list[float]
) -> bool:
    from bench.harness import print_table

    app, bare = median([a.total for a in apps]), median(bares)
    met = app / bare <= GOAL
    size = layout.size
    rows = [
        Row(
            f"{layout.label}: download_model -> ready, median of {len(apps)}",
            f"{app:.2f} s ({size / app / MiB:.0f} MiB/s)",
            f"{bare:.2f} s ({size / bare / MiB:.0f} MiB/s), median of {len(bares)}",
            f"{app / bare:.2f}",
            f"<= {GOAL}",
            met,
        ),
        Row(
            "every run, in order",
            ", ".join(f"{a.total:.2f}" for a in apps) + " s",
            ", ".join(f"{b:.2f}" for b in bares) + " s",
            "",
        ),
        Row("verify_repo_checksums alone (after the bare run)", "", f"{median(verifies):.2f} s", ""),
        Row(
            "bare snapshot_download as a fresh process's first call",
            "",
            f"{median(colds):.2f} s",
            f"app / cold = {app / median(colds):.2f}",
        ),
    ]
    for phase in apps[-1].phases:
        values = [a.phases[phase] for a in apps if phase in a.phases]
        rows.append(Row(f"  app: {phase}", f"{median(values):.2f} s", "", ""))
    print_table(f"bench_download --layout {layout.repo.rsplit('/', 1)[-1]}" + (" --quick" if quick else ""), rows)
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the bytes, one run each (< 30 s)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), action="append",
                        help="which repo (default: both, one after the other)")
    args = parser.parse_args()
    results = [run(args.quick, LAYOUTS[name](args.quick)) for name in args.layout or ("one-gib", "mixed")]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
