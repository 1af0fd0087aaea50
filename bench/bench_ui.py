"""UI workers under load: the page's 0.5 s timer for 200 open pages, and /fetch_models, with 1,000 models.

Each simulated page keeps one keep-alive HTTP connection and does what the browser does: a tick
(``POST /gradio_api/run/predict`` for the timer event, carrying the version it displays) every 0.5 s.

* Timer, one UI worker, 200 pages, idle state: a tick answers "nothing new" and the page does nothing
  more. Baseline: the same pages fetching the whole view (table, banner, disk, log) every 0.5 s, as a timer
  without the version check would. A figure is one timer period: the tick plus any rendering it starts.
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

import httpx
import redis

from app.keys import Keys
from app.records import ModelRecord, Status
from app.store import LogEntry, Store
from bench.harness import Row, median, ms, percentile, print_table, ratio, redis_server

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
    full: int = 0  # periods that fetched the view

    def add(self, seconds: float, ok: bool) -> None:
        self.latencies.append(seconds)
        self.errors += not ok


@dataclass(frozen=True)
class Events:
    """fn_index of the page's timer tick and of the two renderings its triggers start."""

    tick: int
    view: int
    logs: int


QUERY = ["", "all", "name", 1]


def body(fn_index: int, data: list[Any], session: str) -> bytes:
    return json.dumps({"fn_index": fn_index, "data": data, "event_data": None, "session_hash": session,
                       "trigger_id": None}).encode()


async def call(conn: Conn, fn_index: int, data: list[Any], session: str) -> list[Any] | None:
    status, raw = await conn.request("POST", "/gradio_api/run/predict", body(fn_index, data, session))
    return json.loads(raw)["data"] if status == 200 else None


async def update(conn: Conn, events: Events, state: list[str], session: str, *, naive: bool) -> tuple[bool, bool]:
    """One timer period of a page: (ok, got the view). ``state``: shown/trigger of the view and the log."""
    if naive:  # a timer that fetches the whole view every time
        view = await call(conn, events.view, QUERY, session)
        logs = await call(conn, events.logs, [""], session)
        return view is not None and logs is not None, True
    ticked = await call(conn, events.tick, state, session)
    if ticked is None:
        return False, False
    got_view = ticked[0] != state[1]
    if got_view:  # the browser's change event on the trigger
        state[1] = ticked[0]
        view = await call(conn, events.view, QUERY, session)
        if view is None:
            return False, True
        state[0] = view[3]
    if ticked[1] != state[3]:
        state[3] = ticked[1]
        logs = await call(conn, events.logs, [""], session)
        if logs is None:
            return False, got_view
        state[2] = logs[1]
    return True, got_view


async def page(port: int, events: Events, n: int, until: float, samples: Samples, *, naive: bool,
               paced: bool) -> None:
    """One open page: a timer period every 0.5 s (or back to back when not ``paced``)."""
    conn = Conn(port)
    state = ["", "", "", ""]
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
            ok, full = await update(conn, events, state, f"p{n}", naive=naive)
            samples.add(time.perf_counter() - began, ok)
            samples.full += full
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


async def run_pages(port: int, events: Events, seconds: float, *, naive: bool = False, paced: bool = True,
                    api: bool = False, pages: int = PAGES) -> tuple[Samples, Samples, Samples]:
    until = time.monotonic() + seconds
    ticks, fetches, floor = Samples(), Samples(), Samples()
    tasks = [page(port, events, n, until, ticks, naive=naive, paced=paced) for n in range(pages)]
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


def find_events(port: int) -> Events:
    config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30).json()
    deps = config["dependencies"]
    tick = next(d for d in deps if any(t[1] == "tick" for t in d["targets"]))
    view_trigger, logs_trigger = tick["outputs"]

    def on_change(component: int) -> int:
        return int(next(d["id"] for d in deps if [component, "change"] in [list(t) for t in d["targets"]]))

    return Events(int(tick["id"]), on_change(view_trigger), on_change(logs_trigger))


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
            fn = find_events(one)
            asyncio.run(run_pages(one, fn, 2.0))  # warm up
            alone, _, _ = asyncio.run(run_pages(one, fn, 2.0, paced=False, pages=1))
            healthz = Samples()
            asyncio.run(caller(one, "/healthz", "GET", b"", time.monotonic() + 2.0, healthz))
            rows.append(Row("timer tick alone (one page, back to back): service time", ms(median(alone.latencies)),
                            f"{ms(median(healthz.latencies))} (GET /healthz)",
                            ratio(median(alone.latencies), median(healthz.latencies))))
            idle, _, _ = asyncio.run(run_pages(one, fn, phase))
            naive, _, _ = asyncio.run(run_pages(one, fn, phase, naive=True))
            rows += [
                Row(f"timer tick p50, 1 worker, {PAGES} pages, idle", ms(median(idle.latencies)),
                    f"{ms(median(naive.latencies))} (full view every tick)",
                    ratio(median(naive.latencies), median(idle.latencies))),
                Row("timer tick p99, same", ms(percentile(idle.latencies, 99)),
                    f"{ms(percentile(naive.latencies, 99))} (full view every tick)",
                    ratio(percentile(naive.latencies, 99), percentile(idle.latencies, 99))),
                Row("ticks answered per second, same", f"{rate(idle, phase):.0f}/s",
                    f"{PAGES / TICK_S:.0f}/s offered", ratio(rate(idle, phase), PAGES / TICK_S)),
            ]
            notes.append(f"Idle: {idle.full} of {len(idle.latencies)} periods fetched the view (each page's "
                         f"first); errors {idle.errors + naive.errors}. A view is the first table page (50 of "
                         f"{MODELS:,} models), the disk panel and the banner; the log shows the newest 300 lines.")
            progress = Progress(url)
            progress.start()
            try:
                busy, fetches, floor = asyncio.run(run_pages(one, fn, phase, api=True))
            finally:
                progress.stop_event.set()
                progress.join()
            rows += [
                Row("timer tick p50, a download progressing 4x/s", ms(median(busy.latencies)),
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
            notes.append(f"Busy: {busy.full} of {len(busy.latencies)} periods fetched the view; "
                         f"{len(fetches.latencies)} /fetch_models calls; errors {busy.errors + fetches.errors}.")
            rows += throughput(workers, Path(tmp), fn, phase, notes)
    print_table("bench_ui" + (" --quick" if quick else ""), rows, notes)


def throughput(workers: list[Any], tmp: Path, fn: Events, phase: float, notes: list[str]) -> list[Row]:
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
