"""The HTTP API of a UI worker: ``GET /api/v1/models`` against Gradio's ``/fetch_models`` with 1,000 models, and the
progress stream's delay from a record change to the line.

One Redis seeded with 1,000 models and 1,000 log lines (as bench/bench_ui.py seeds it) and one UI worker process
(``tests/ui/ui_worker.py``, the production composition, sign-in off).

* Service times, one keep-alive connection back to back: ``GET /api/v1/models``, Gradio's one-request API
  ``POST /gradio_api/run/fetch_models`` (the same records), a filtered list, and ``GET /healthz`` as the HTTP
  floor; with the UI worker's CPU time per call (user + system from ``/proc/<pid>/stat`` over the phase).
* The same with 10 callers at once: calls answered per second.
* Progress: a writer in this process moves a downloading record's ``bytes_done`` 20 times a second through
  ``Store.update`` (what a download job does, 4 times a second); followers read
  ``GET /api/v1/models/{name}/progress``. The delay runs from just before the write to the arrival of the line
  that carries its ``bytes_done``: Redis, pub/sub, the worker's listener, its replica, the stream, the client.
  The same delay for ``GET /api/v1/events``, whose events come from the Redis stream instead.

    python bench/bench_api.py [--quick]

Exits 1 when a goal row is not met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis

from app.core.keys import Keys
from app.core.records import ModelRecord
from app.core.store import LogEntry, Store
from bench.bench_ui import BUSY, MODELS, cpu_seconds, seed, ui_workers
from bench.harness import Row, median, ms, percentile, print_table, ratio, redis_server

API = "/api/v1"
GRADIO = "/gradio_api/run/fetch_models"
CALLERS = 10
FOLLOWERS = 50
TICKS_PER_S = 20
GOAL_P50_S = 0.005
GOAL_CPU_RATIO = 10.0
GOAL_DELAY_P99_S = 0.050


@dataclass
class Calls:
    """Latencies of calls of one kind and the UI worker's CPU seconds over them."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    cpu: float = 0.0
    seconds: float = 0.0
    size: int = 0

    @property
    def cpu_per_call(self) -> float:
        return self.cpu / max(1, len(self.latencies))

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def back_to_back(base: str, method: str, path: str, seconds: float, pid: int, body: bytes | None = None) -> Calls:
    """One keep-alive connection calling ``path`` for ``seconds``."""
    calls = Calls()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with httpx.Client(base_url=base, timeout=30) as client:
        client.request(method, path, content=body, headers=headers)  # the connection is open before timing
        cpu_before, began = cpu_seconds([pid]), time.monotonic()
        while time.monotonic() - began < seconds:
            start = time.perf_counter()
            response = client.request(method, path, content=body, headers=headers)
            calls.latencies.append(time.perf_counter() - start)
            calls.errors += response.status_code != 200
            calls.size = len(response.content)
        calls.seconds, calls.cpu = time.monotonic() - began, cpu_seconds([pid]) - cpu_before
    return calls


async def _caller(client: httpx.AsyncClient, method: str, path: str, body: bytes | None, until: float,
                  calls: Calls) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    while time.monotonic() < until:
        start = time.perf_counter()
        response = await client.request(method, path, content=body, headers=headers)
        calls.latencies.append(time.perf_counter() - start)
        calls.errors += response.status_code != 200


async def _concurrent(base: str, method: str, path: str, seconds: float, pid: int, body: bytes | None) -> Calls:
    calls = Calls()
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for _ in range(CALLERS)]
    try:
        cpu_before, began = cpu_seconds([pid]), time.monotonic()
        await asyncio.gather(*(_caller(c, method, path, body, began + seconds, calls) for c in clients))
        calls.seconds, calls.cpu = time.monotonic() - began, cpu_seconds([pid]) - cpu_before
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return calls


def concurrent(base: str, method: str, path: str, seconds: float, pid: int, body: bytes | None = None) -> Calls:
    return asyncio.run(_concurrent(base, method, path, seconds, pid, body))


def same_records(base: str) -> bool:
    api = httpx.get(base + API + "/models", timeout=30).json()["models"]
    gradio = httpx.post(base + GRADIO, json={"data": []}, timeout=30).json()["data"][0]
    return bool(api == gradio and len(api) == MODELS)


def _cheaper(calls: Calls, gradio: Calls) -> float:
    return gradio.cpu_per_call / calls.cpu_per_call


def _cpu(calls: Calls) -> str:
    return f"{calls.cpu_per_call * 1e3:.2f} ms"


def list_rows(base: str, pid: int, phase: float, notes: list[str]) -> list[Row]:
    fetch = json.dumps({"data": []}).encode()
    api = back_to_back(base, "GET", API + "/models", phase, pid)
    gradio = back_to_back(base, "POST", GRADIO, phase, pid, fetch)
    uncached = back_to_back(base, "GET", API + "/models?q=/", phase / 2, pid)
    filtered = back_to_back(base, "GET", API + "/models?status=failed", phase / 2, pid)
    floor = back_to_back(base, "GET", "/healthz", phase / 2, pid)
    api10 = concurrent(base, "GET", API + "/models", phase, pid)
    gradio10 = concurrent(base, "POST", GRADIO, phase, pid, fetch)
    errors = sum(c.errors for c in (api, gradio, uncached, filtered, floor, api10, gradio10))
    notes.append(f"List: {len(api.latencies)} API calls and {len(gradio.latencies)} Gradio calls back to back, "
                 f"errors {errors}; both answer the same {MODELS:,} records: {same_records(base)}. CPU per call is the "
                 "UI worker's user + system time over the phase divided by the calls it answered. The whole list is "
                 "serialized once per state version; `?q=/` matches every name and skips that cache, as every call "
                 "would if the state changed between any two of them.")
    p50, p50_uncached, p50_gradio = (median(c.latencies) for c in (api, uncached, gradio))
    return [
        Row(f"GET {API}/models p50 ({MODELS:,} models, one connection back to back)", ms(p50),
            f"{ms(p50_gradio)} ({GRADIO})", ratio(p50, p50_gradio), "<= 5 ms", p50 <= GOAL_P50_S),
        Row("  p99, same", ms(percentile(api.latencies, 99)), f"{ms(percentile(gradio.latencies, 99))} (Gradio)",
            ratio(percentile(api.latencies, 99), percentile(gradio.latencies, 99))),
        Row("  UI worker CPU per call", _cpu(api), f"{_cpu(gradio)} (Gradio)", f"{_cheaper(api, gradio):.1f}x cheaper",
            ">= 10x cheaper", _cheaper(api, gradio) >= GOAL_CPU_RATIO),
        Row(f"GET {API}/models?q=/ p50 (all {MODELS:,}, serialized for each call)", ms(p50_uncached),
            f"{ms(p50_gradio)} (Gradio)", ratio(p50_uncached, p50_gradio), "<= 5 ms", p50_uncached <= GOAL_P50_S),
        Row("  UI worker CPU per call", _cpu(uncached), f"{_cpu(gradio)} (Gradio)",
            f"{_cheaper(uncached, gradio):.1f}x cheaper", ">= 10x cheaper",
            _cheaper(uncached, gradio) >= GOAL_CPU_RATIO),
        Row("  answer size", f"{api.size / 1e6:.2f} MB", f"{gradio.size / 1e6:.2f} MB (Gradio)", ""),
        Row(f"GET {API}/models, {CALLERS} callers at once: calls/s", f"{api10.rate:.0f}/s",
            f"{gradio10.rate:.0f}/s (Gradio)", ratio(api10.rate, gradio10.rate)),
        Row("  p50 / p99, same", f"{ms(median(api10.latencies))} / {ms(percentile(api10.latencies, 99))}",
            f"{ms(median(gradio10.latencies))} / {ms(percentile(gradio10.latencies, 99))} (Gradio)", ""),
        Row(f"GET {API}/models?status=failed p50 (20 of {MODELS:,})", ms(median(filtered.latencies)),
            f"{ms(median(floor.latencies))} (GET /healthz)",
            ratio(median(filtered.latencies), median(floor.latencies))),
        Row("GET /healthz p50 (the HTTP floor); UI worker CPU per call", ms(median(floor.latencies)), _cpu(floor), ""),
    ]


# ---- delays from a write to the line that shows it ---------------------------------------------------------


class Follower(threading.Thread):
    """Reads one stream and stamps the arrival of each ``bytes_done`` it shows."""

    def __init__(self, url: str, parse: Callable[[str], int | None], ready: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self.url, self.parse, self.ready = url, parse, ready
        self.arrived: dict[int, float] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        with httpx.stream("GET", self.url, timeout=60) as response:
            lines = response.iter_lines()
            next(lines)  # the first line (progress) or the retry hint (events): the stream stands
            self.ready.wait()
            for line in lines:
                done = self.parse(line)
                if done is not None:
                    self.arrived.setdefault(done, time.monotonic())
                if self.stop_event.is_set():
                    return  # leaving the block closes the stream


class Subscriber(threading.Thread):
    """The floor: this process subscribed to the events channel itself, stamping each ``bytes_done`` it sees
    (Redis's write and pub/sub on this busy machine, without the UI worker)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(Keys("modeldepot").events_channel)
        self.arrived: dict[int, float] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                record = json.loads(message["data"]).get("record") or {}
                if record.get("name") == BUSY:
                    self.arrived.setdefault(int(record["bytes_done"]), time.monotonic())
        self.pubsub.close()


def _progress_line(line: str) -> int | None:
    return int(json.loads(line)["bytes_done"]) if line else None


def _event_line(line: str) -> int | None:
    if not line.startswith("data: "):
        return None
    record = json.loads(line[6:]).get("record") or {}
    return int(record["bytes_done"]) if record.get("name") == BUSY else None


@dataclass
class Delays:
    """Write-to-arrival delays of the followers, and of the floor's subscriber at the same moments."""

    lines: list[float]
    floor: list[float]
    writes: int


def delays(url: str, stream: str, followers: int, seconds: float, parse: Callable[[str], int | None]) -> Delays:
    """Write ticks for ``seconds`` while ``followers`` read ``stream`` (and the floor's subscriber the channel)."""
    ready = threading.Barrier(followers + 1)
    readers = [Follower(stream, parse, ready) for _ in range(followers)]
    floor = Subscriber(url)
    floor.start()
    for reader in readers:
        reader.start()
    ready.wait(timeout=60)
    store = Store(redis.Redis.from_url(url), Keys("modeldepot"), sender="bench-writer")
    written: dict[int, float] = {}
    done = int(time.time() * 1000) * 10  # grows run after run, so no value repeats one of an earlier phase
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        done += 1
        written[done] = time.monotonic()
        tick(store, done)
        time.sleep(1 / TICKS_PER_S)
    time.sleep(0.5)
    for reader in readers:
        reader.stop_event.set()
    floor.stop_event.set()
    tick(store, done + 1)  # wakes every reader, which then leaves
    for reader in [*readers, floor]:
        reader.join(timeout=10)
    store.redis.close()
    lines = [reader.arrived[d] - at for reader in readers for d, at in written.items() if d in reader.arrived]
    return Delays(lines, [floor.arrived[d] - at for d, at in written.items() if d in floor.arrived], len(written))


def tick(store: Store, done: int) -> None:
    """One progress write of the busy download, as a job makes it."""
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        assert current is not None
        return current.model_copy(update={"bytes_done": done}), None

    store.update(BUSY, mutate, kind="progress")


def delay_rows(url: str, base: str, phase: float, notes: list[str]) -> list[Row]:
    progress = base + API + f"/models/{BUSY}/progress"
    one = delays(url, progress, 1, phase, _progress_line)
    many = delays(url, progress, FOLLOWERS, phase, _progress_line)
    sse = delays(url, base + API + "/events", 1, phase, _event_line)
    notes.append(f"Delays: {one.writes}, {many.writes} and {sse.writes} writes, {TICKS_PER_S} a second; "
                 f"{len(one.lines)}, {len(many.lines)} and {len(sse.lines)} lines arrived (1 follower, {FOLLOWERS} "
                 "followers, 1 event stream): a progress stream sends the record as it is when it looks, so two "
                 "writes that reach the replica before the stream wakes make one line. A delay starts just before "
                 "the write's round trip to Redis. The floor is this process subscribed to the events channel "
                 "itself during the same phase: Redis and pub/sub on this machine, without the UI worker.")

    def p50_p99(values: list[float]) -> str:
        return f"{ms(median(values))} / {ms(percentile(values, 99))}"

    p99, p99_many = percentile(one.lines, 99), percentile(many.lines, 99)
    return [
        Row("progress stream: write -> line, p99 (1 follower)", ms(p99), f"{ms(percentile(one.floor, 99))} (floor)",
            ratio(p99, percentile(one.floor, 99)), "<= 50 ms", p99 <= GOAL_DELAY_P99_S),
        Row("  p50, same", ms(median(one.lines)), f"{ms(median(one.floor))} (floor)",
            ratio(median(one.lines), median(one.floor))),
        Row(f"  p50 / p99, {FOLLOWERS} followers of the same model", p50_p99(many.lines),
            f"{p50_p99(many.floor)} (floor)", "", "<= 50 ms", p99_many <= GOAL_DELAY_P99_S),
        Row(f"events stream ({API}/events): write -> event, p50 / p99", p50_p99(sse.lines),
            f"{p50_p99(sse.floor)} (floor)", ""),
    ]


def run(quick: bool) -> bool:
    """Run every phase and print the table; True when every goal row is met."""
    phase = 3.0 if quick else 10.0
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, redis_server(Path(tmp) / "redis") as url:
        seed(url)
        env = {**os.environ, "MODELDEPOT_REDIS_URL": url, "MODELDEPOT_DATA_DIR": str(Path(tmp) / "data"),
               "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        with ui_workers(env, 1, Path(tmp)) as workers:
            worker = workers[0]
            base, pid = worker.url, worker.proc.pid
            back_to_back(base, "GET", API + "/models", 1.0, pid)  # warm up both paths
            back_to_back(base, "POST", GRADIO, 1.0, pid, b'{"data": []}')
            rows = list_rows(base, pid, phase, notes)
            rows += delay_rows(url, base, phase, notes)
    print_table("bench_api" + (" --quick" if quick else ""), rows, notes)
    return all(row.met is not False for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s phases instead of 10 s")
    args = parser.parse_args()
    return 0 if run(args.quick) else 1


if __name__ == "__main__":
    raise SystemExit(main())
