"""Dispatch: time from ``Controller.download_model`` to the job running in an idle worker.

One ``python -m app.cli worker`` (Model Depot's worker: forking, JSON serializer, allowlisted jobs) and one
plain ``rq.Worker`` on a queue of its own (the baseline, running :func:`bench.harness.noop`) are started and
left idle. Jobs alternate: a download of a tiny repo (one 2-byte file, a new repo each time, served by a
local Hub in this process) then a no-op job; each is waited for, and both workers are idle again, before
the next. 100 of each (``--quick``: 15).

Per job, from the clock just before the call (``download_model`` / ``Queue.enqueue``):
  started - RQ's ``started_at`` (set in the work-horse right after the fork)     -> the goal row (p50 < 20 ms)
  claimed - the record turned ``downloading`` (its ``updated_at``, written by the job itself)
and RQ's own ``enqueued_at -> started_at`` for both. All clocks are this machine's wall clock.

    python bench/bench_dispatch.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bench.harness import (
    NOOP_FUNC,
    Row,
    ms,
    percentile,
    print_table,
    process,
    redis_server,
    wait_for_idle_workers,
    worker_env,
)

GOAL_P50_S = 0.020
BASELINE_QUEUE = "bench-noop"
_PLAIN_WORKER = """
import sys
import redis
from rq import Queue, Worker
connection = redis.Redis.from_url(sys.argv[1])
Worker([Queue(sys.argv[2], connection=connection)], connection=connection, name="bench-plain").work()
"""


@dataclass
class Dispatch:
    called: float
    enqueued: float
    started: float
    claimed: float | None = None


def job_times(connection: redis.Redis, job_id: str, *, json_jobs: bool) -> tuple[float, float]:
    job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer if json_jobs else None)
    assert job.enqueued_at is not None and job.started_at is not None, job_id
    return job.enqueued_at.timestamp(), job.started_at.timestamp()


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError(f"{what} within {timeout}s")


def app_dispatch(controller: Any, connection: redis.Redis, name: str) -> Dispatch:
    called = time.time()
    outcome = controller.download_model(name, requested_by="bench")
    record = wait_until(lambda: _finished(controller, name), 60, f"{name} did not finish")
    if record["status"] != "ready":
        raise RuntimeError(f"{name} ended {record['status']}: {record.get('error')}")
    enqueued, started = job_times(connection, outcome.job_id, json_jobs=True)
    return Dispatch(called, enqueued, started, claimed_at(controller, name, outcome.job_id, called))


def _finished(controller: Any, name: str) -> dict[str, Any] | None:
    record = controller.models.get(name)
    return record if record and record["status"] in ("ready", "failed", "cancelled") else None


def claimed_at(controller: Any, name: str, job_id: str, since: float) -> float | None:
    """``updated_at`` of the event that moved the record to ``downloading`` (from the events stream)."""
    for _, fields in controller.redis.xrange(controller.keys.events_stream, min=f"{int(since * 1000)}-0"):
        event = json.loads(fields[b"event"])
        record = event.get("record") or {}
        if event.get("name") == name and record.get("job_id") == job_id and record["status"] == "downloading":
            return float(record["updated_at"])
    return None


def noop_dispatch(queue: Queue, connection: redis.Redis) -> Dispatch:
    called = time.time()
    job = queue.enqueue(NOOP_FUNC)
    wait_until(lambda: job.get_status(refresh=True) == "finished", 30, "the no-op job did not finish")
    enqueued, started = job_times(connection, job.id, json_jobs=False)
    return Dispatch(called, enqueued, started)


def run(quick: bool) -> bool:
    from tests.hubserver import HubServer

    count = 15 if quick else 100
    hub = HubServer().start()
    names = [f"bench/tiny-{i:03d}" for i in range(count)]
    for name in names:
        hub.add_repo(name, {"config.json": b"{}"})
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp_name,
            redis_server(Path(tmp_name) / "redis") as url,
        ):
            apps, noops = measure(url, hub.url, Path(tmp_name), names)
    finally:
        hub.stop()
    return report(quick, apps, noops)


def measure(url: str, hub_url: str, tmp: Path, names: list[str]) -> tuple[list[Dispatch], list[Dispatch]]:
    from app.core.controller import Controller
    from app.core.settings import Settings

    env = worker_env(url, tmp / "data", hub_url)
    connection = redis.Redis.from_url(url)
    queue = Queue(BASELINE_QUEUE, connection=connection)
    with (
        process([sys.executable, "-m", "app.cli", "worker"], env, tmp / "worker.log") as worker,
        process([sys.executable, "-c", _PLAIN_WORKER, url, BASELINE_QUEUE], env, tmp / "plain.log") as plain,
    ):
        wait_for_idle_workers(connection, 2, proc=worker, log_path=tmp / "worker.log")
        assert plain.poll() is None, (tmp / "plain.log").read_text()
        with Controller(Settings(redis_url=url, data_dir=tmp / "data")) as controller:
            apps, noops = [], []
            for name in names:
                apps.append(app_dispatch(controller, connection, name))
                wait_for_idle_workers(connection, 2, proc=worker)
                noops.append(noop_dispatch(queue, connection))
                wait_for_idle_workers(connection, 2, proc=plain)
    connection.close()
    return apps, noops


def report(quick: bool, apps: list[Dispatch], noops: list[Dispatch]) -> bool:
    def pair(values: list[float]) -> str:
        return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"

    app_start = [d.started - d.called for d in apps]
    base_start = [d.started - d.called for d in noops]
    app_rq = [d.started - d.enqueued for d in apps]
    base_rq = [d.started - d.enqueued for d in noops]
    claimed = [d.claimed - d.called for d in apps if d.claimed is not None]
    app_enqueue = [d.enqueued - d.called for d in apps]
    p50, base_p50 = percentile(app_start, 50), percentile(base_start, 50)
    met = p50 < GOAL_P50_S
    rows = [
        Row(
            f"download_model -> job started (RQ started_at), {len(apps)} jobs: p50",
            ms(p50),
            f"{ms(base_p50)} (plain rq.Worker, no-op, enqueue call -> started)",
            f"{p50 / base_p50:.2f}",
            "< 20 ms",
            met,
        ),
        Row(
            "  same: p99",
            ms(percentile(app_start, 99)),
            ms(percentile(base_start, 99)),
            f"{percentile(app_start, 99) / percentile(base_start, 99):.2f}",
        ),
        Row(
            "RQ enqueued_at -> started_at: p50 / p99",
            pair(app_rq),
            pair(base_rq),
            f"{percentile(app_rq, 50) / percentile(base_rq, 50):.2f} (p50)",
        ),
        Row(
            "download_model call -> RQ enqueued_at: p50 / p99",
            pair(app_enqueue),
            pair([d.enqueued - d.called for d in noops]),
            "",
        ),
        Row("download_model -> record downloading (job claimed it): p50 / p99", pair(claimed), "", ""),
    ]
    print_table("bench_dispatch" + (" --quick" if quick else ""), rows)
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 jobs of each kind (< 30 s)")
    args = parser.parse_args()
    return 0 if run(args.quick) else 1


if __name__ == "__main__":
    raise SystemExit(main())
