"""UI workers under load: the page's 0.5 s timer for 200 open pages, and /fetch_models, with 1,000 models.

Each simulated page keeps one keep-alive HTTP connection and does what the browser does: a tick
(``POST /gradio_api/run/predict`` for the timer event, carrying the version it displays) every 0.5 s.

* Timer, one UI worker, 200 pages, idle state: ticks skip (nothing changed). Baseline: the same pages
  without the skip (they send no version, so every tick returns the whole view, as a naive timer would).
* Timer while a download updates its progress 4 times a second (every tick of every page has news).
* ``/fetch_models`` (one-request API, 1,000 records) from 20 concurrent callers while the 200 pages tick.
  Baseline: ``GET /healthz`` on the same worker under the same load (the HTTP floor).
* Throughput: pages tick as fast as they get answers (closed loop): 3 UI workers behind HAProxy
  (deploy/haproxy.cfg) vs one worker. The load generator shares the machine's cores with the servers.

    python bench/bench_ui.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import redis  # noqa: E402

from app.keys import Keys  # noqa: E402
from app.records import ModelRecord, Status  # noqa: E402
from app.store import LogEntry, Store  # noqa: E402
from bench.harness import Row, median, ms, percentile, print_table, ratio, redis_server  # noqa: E402

MODELS = 1_000
PAGES = 200
TICK_S = 0.5
API_CALLERS = 20
BUSY = "org0/downloading-now"


# ---- a small keep-alive HTTP/1.1 client: cheap enough that 200 pages fit beside the servers --------------


class Conn:
    """One keep-alive connection, one request at a time (like one browser page's event calls)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            data = b""
            while (size := int((await self.reader.readline()).strip() or b"0", 16)) > 0:
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            await self.close()
        return int(status_line.split()[1]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    full: int = 0  # ticks that returned the view (not skipped)

    def add(self, seconds: float, ok: bool) -> None:
        self.latencies.append(seconds)
        self.errors += not ok


def tick_body(fn_index: int, seen: str, session: str) -> bytes:
    return json.dumps({"fn_index": fn_index, "data": [seen, "", "all", "name", 1, ""], "event_data": None,
                       "session_hash": session, "trigger_id": None}).encode()


async def page(port: int, fn_index: int, n: int, until: float, samples: Samples, *, skip: bool,
               paced: bool) -> None:
    """One open page: ticks every 0.5 s (or back to back when not ``paced``)."""
    conn = Conn(port)
    seen = ""
    start = time.monotonic() + (n % 50) * TICK_S / 50  # spread the pages over one period
    k = 0
    try:
        while True:
            if paced:
                delay = start + k * TICK_S - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.monotonic() >= until:
                return
            k += 1
            began = time.perf_counter()
            status, data = await conn.request("POST", "/gradio_api/run/predict", tick_body(fn_index, seen, f"p{n}"))
            samples.add(time.perf_counter() - began, status == 200)
            if status == 200:
                values = json.loads(data)["data"]
                samples.full += "value" in values[1]
                if skip and isinstance(values[5], str):
                    seen = values[5]
    except (OSError, asyncio.IncompleteReadError):
        samples.errors += 1
    finally:
        await conn.close()


async def caller(port: int, path: str, method: str, body: bytes, until: float, samples: Samples) -> None:
    conn = Conn(port)
    try:
        while time.monotonic() < until:
            began = time.perf_counter()
            status, _ = await conn.request(method, path, body)
            samples.add(time.perf_counter() - began, status == 200)
    finally:
        await conn.close()


async def run_pages(port: int, fn_index: int, seconds: float, *, skip: bool = True, paced: bool = True,
                    api: bool = False) -> tuple[Samples, Samples, Samples]:
    until = time.monotonic() + seconds
    ticks, fetches, floor = Samples(), Samples(), Samples()
    tasks = [page(port, fn_index, n, until, ticks, skip=skip, paced=paced) for n in range(PAGES)]
    if api:
        fetch = json.dumps({"data": []}).encode()
        tasks += [caller(port, "/gradio_api/run/fetch_models", "POST", fetch, until, fetches)
                  for _ in range(API_CALLERS // 2)]
        tasks += [caller(port, "/healthz", "GET", b"", until, floor) for _ in range(API_CALLERS // 2)]
    await asyncio.gather(*tasks)
    return ticks, fetches, floor


# ---- the stack -----------------------------------------------------------------------------------------


def seed(url: str) -> None:
    now = time.time()
    models = {}
    for i in range(MODELS):
        name = BUSY if i == 0 else f"org{i % 97}/model-{i:05d}"
        status = Status.DOWNLOADING if i == 0 else (Status.FAILED if i % 50 == 0 else Status.READY)
        record = ModelRecord(name=name, repo_id=name, status=status, commit=f"{i:040x}", size_bytes=4_000_000_000 + i,
                             bytes_done=1_000_000 + i, bytes_total=4_000_000_000 + i, files_done=3, files_total=12,
                             requested_by="alice", requested_at=now - i, job_id=f"md-dl-{i:016x}", attempt=1,
                             error="Repository not found; check the name" if status is Status.FAILED else None)
        models[name] = record.to_dict()
    logs = [LogEntry("alice", f"queued download of model {i}", ts=now - 1000 + i) for i in range(1000)]
    assert Store(redis.Redis.from_url(url), Keys("modeldepot")).seed(1, models, logs)


class Progress(threading.Thread):
    """A download's progress writes: 4 per second, as workers write them (progress_interval 0.25 s)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.store = Store(redis.Redis.from_url(url), Keys("modeldepot"), sender="bench")
        self.stop_event = threading.Event()

    def run(self) -> None:
        done = 0
        while not self.stop_event.wait(0.25):
            done += 10_000_000

            def mutate(current: ModelRecord | None, done: int = done) -> tuple[ModelRecord | None, None]:
                assert current is not None
                return current.model_copy(update={"bytes_done": done, "speed_bps": 40e6, "eta_s": 90.0}), None

            self.store.update(BUSY, mutate, kind="progress")


@contextlib.contextmanager
def ui_workers(env: dict[str, str], count: int, log_dir: Path) -> Iterator[list[Any]]:
    from tests.ui.servers import UiWorkerProcess

    workers = [UiWorkerProcess(env, log_dir, f"ui{i + 1}").start() for i in range(count)]
    try:
        for w in workers:
            w.wait_ready(timeout=120)
        yield workers
    finally:
        for w in workers:
            w.stop()


def tick_index(port: int) -> int:
    config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).json()
    return int(next(d["id"] for d in config["dependencies"] if any(t[1] == "tick" for t in d["targets"])))


def rate(samples: Samples, seconds: float) -> float:
    return len(samples.latencies) / seconds


def run(quick: bool) -> None:
    phase = 3.0 if quick else 10.0
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp, redis_server(Path(tmp) / "redis") as url:
        seed(url)
        env = {**os.environ, "MODELDEPOT_REDIS_URL": url, "MODELDEPOT_DATA_DIR": str(Path(tmp) / "data"),
               "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        with ui_workers(env, 3, Path(tmp)) as workers:
            one = workers[0].port
            fn = tick_index(one)
            asyncio.run(run_pages(one, fn, 2.0))  # warm up
            idle, _, _ = asyncio.run(run_pages(one, fn, phase))
            naive, _, _ = asyncio.run(run_pages(one, fn, phase, skip=False))
            rows += [
                Row(f"timer tick p50, 1 worker, {PAGES} pages, idle", ms(median(idle.latencies)),
                    f"{ms(median(naive.latencies))} (no skip)", ratio(median(naive.latencies), median(idle.latencies))),
                Row("timer tick p99, same", ms(percentile(idle.latencies, 99)),
                    f"{ms(percentile(naive.latencies, 99))} (no skip)",
                    ratio(percentile(naive.latencies, 99), percentile(idle.latencies, 99))),
                Row("ticks answered per second, same", f"{rate(idle, phase):.0f}/s",
                    f"{PAGES / TICK_S:.0f}/s offered", ratio(rate(idle, phase), PAGES / TICK_S)),
            ]
            notes.append(f"Idle: {idle.full} of {len(idle.latencies)} ticks returned the view; "
                         f"errors {idle.errors + naive.errors}. Payload per tick: tiny when skipped, the first "
                         f"page of {MODELS:,} models otherwise.")
            progress = Progress(url)
            progress.start()
            try:
                busy, fetches, floor = asyncio.run(run_pages(one, fn, phase, api=True))
            finally:
                progress.stop_event.set()
                progress.join()
            rows += [
                Row("timer tick p50, a download progressing 4×/s", ms(median(busy.latencies)),
                    f"{ms(median(idle.latencies))} (idle)", ratio(median(busy.latencies), median(idle.latencies))),
                Row("timer tick p99, same", ms(percentile(busy.latencies, 99)),
                    f"{ms(percentile(idle.latencies, 99))} (idle)",
                    ratio(percentile(busy.latencies, 99), percentile(idle.latencies, 99))),
                Row(f"/fetch_models p50 ({MODELS:,} models, {API_CALLERS // 2} callers + the pages)",
                    ms(median(fetches.latencies)), f"{ms(median(floor.latencies))} (GET /healthz)",
                    ratio(median(fetches.latencies), median(floor.latencies))),
                Row("/fetch_models p99, same", ms(percentile(fetches.latencies, 99)),
                    f"{ms(percentile(floor.latencies, 99))} (GET /healthz)",
                    ratio(percentile(fetches.latencies, 99), percentile(floor.latencies, 99))),
            ]
            notes.append(f"Busy: {busy.full} of {len(busy.latencies)} ticks returned the view; "
                         f"{len(fetches.latencies)} /fetch_models calls; errors {busy.errors + fetches.errors}.")
            rows += throughput(workers, Path(tmp), fn, phase, notes)
    print_table("bench_ui" + (" --quick" if quick else ""), rows, notes)


def throughput(workers: list[Any], tmp: Path, fn: int, phase: float, notes: list[str]) -> list[Row]:
    from tests.ui.servers import Balancer, wait_until

    direct, _, _ = asyncio.run(run_pages(workers[0].port, fn, phase, paced=False))
    balancer = Balancer([(w.name, w.port) for w in workers], tmp).start()
    try:
        wait_until(lambda: set(balancer.server_states().values()) == {"UP"}, 20, "workers UP")
        paced, _, _ = asyncio.run(run_pages(balancer.port, fn, phase))
        closed, _, _ = asyncio.run(run_pages(balancer.port, fn, phase, paced=False))
    finally:
        balancer.stop()
    notes.append(f"Closed loop: errors {direct.errors + closed.errors}; {os.cpu_count()} cores shared by "
                 "the load generator, HAProxy and the UI workers, so 3 workers cannot triple throughput here.")
    return [
        Row(f"timer tick p50, 3 workers via HAProxy, {PAGES} pages", ms(median(paced.latencies)), "", ""),
        Row("timer tick p99, same", ms(percentile(paced.latencies, 99)), "", ""),
        Row("max ticks/s, closed loop: 3 workers via HAProxy", f"{rate(closed, phase):.0f}/s",
            f"{rate(direct, phase):.0f}/s (1 worker, direct)", ratio(rate(closed, phase), rate(direct, phase))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s phases instead of 10 s")
    args = parser.parse_args()
    run(args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
