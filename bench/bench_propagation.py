"""Propagation: time from a write in one replica process to its application in every other replica.

Four spawned processes each hold a ``Controller`` on one redis-server (127.0.0.1). Process 0 writes; the
three others record, per state version, when their listener applied it (the ``Replica.apply`` of each
reader is wrapped to stamp ``time.monotonic()``, a system-wide clock on Linux). The write time is taken just
before the call, so a figure includes the write's own round trip to Redis.

Phases (full / ``--quick`` counts):
  1. ``add_log`` paced, 1,000 / 200 writes, one every 5 ms    -> the goal row (p99 < 5 ms)
  2. ``add_log`` back to back, 1,000 / 200 writes             -> the same under a burst
  3. ``download_model`` of distinct names, paced, 1,000 / 200 -> writes that carry a whole record
Floor: after each paced write the writer also sends a bare ``PUBLISH`` that a bare redis-py subscriber thread in
each reader stamps, so the machine's own latency is measured at the same moments.
``--models N`` seeds N ready records first, so every full reload (``Listener.resync``) costs what it would
in a deployment of that size.
Baseline (same run, last): the naive design, a replica that re-reads the JSON snapshot file once a second. The
writer saves the snapshot after each ``add_log`` (``snapshot.persist``); a fifth process polls the file with
``snapshot.load_file`` every second. A write counts as applied at the first poll that sees its version.

    python bench/bench_propagation.py [--quick] [--models N]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Row, ms, percentile, print_table, redis_server

CTX = mp.get_context("spawn")
READERS = 3
GOAL_P99_S = 0.005
POLL_S = 1.0
FLOOR_CHANNEL = "bench:floor"


@dataclass
class Write:
    version: int
    start: float
    end: float


# ---- child processes -----------------------------------------------------------------------------------


def _controller(url: str, data_dir: str) -> Any:
    from app.core.controller import Controller
    from app.core.settings import Settings

    controller = Controller(Settings(redis_url=url, data_dir=Path(data_dir)))
    deadline = time.monotonic() + 30
    while not controller.in_sync and time.monotonic() < deadline:
        time.sleep(0.01)
    return controller


def reader_main(url: str, data_dir: str, ready: Any, stop: Any, out: Any) -> None:
    """Stamp every version this replica's listener applies, or reaches by a full reload."""
    from app.core.sync import Applied

    controller = _controller(url, data_dir)
    applied: dict[int, float] = {}
    resets: list[tuple[int, float]] = []
    replica = controller.replica
    apply, reset = replica.apply, replica.reset

    def stamped_apply(event: dict[str, Any]) -> Applied:
        result: Applied = apply(event)
        if result is Applied.APPLIED:
            applied[int(event["v"])] = time.monotonic()
        return result

    def stamped_reset(state: Any, *, force: bool = False) -> None:
        reset(state, force=force)
        resets.append((replica.version, time.monotonic()))

    replica.apply = stamped_apply  # type: ignore[method-assign]
    replica.reset = stamped_reset  # type: ignore[method-assign]
    floor: dict[int, float] = {}
    pauses = _watch_gc()
    thread = threading.Thread(target=_floor_listener, args=(controller.redis, floor, stop), daemon=True)
    thread.start()
    ready.put(("reader", controller.version))
    stop.wait(600)
    thread.join(5)
    out.put(Stamps(applied, resets, floor, pauses))
    controller.close()


@dataclass
class Stamps:
    """What one reader saw: version -> applied at, full reloads, floor messages, GC pauses."""

    applied: dict[int, float]
    resets: list[tuple[int, float]]
    floor: dict[int, float]
    gc_pauses: list[tuple[int, float, float]]  # generation, start, seconds


def _watch_gc() -> list[tuple[int, float, float]]:
    pauses: list[tuple[int, float, float]] = []
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        else:
            pauses.append((info["generation"], started[0], time.monotonic() - started[0]))

    gc.callbacks.append(callback)
    return pauses


def _floor_listener(client: Any, received: dict[int, float], stop: Any) -> None:
    """The floor: a bare redis-py subscriber thread, stamping each floor message on arrival."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(FLOOR_CHANNEL)
    while not stop.is_set():
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            received[int(message["data"])] = time.monotonic()
    pubsub.close()


def writer_main(url: str, data_dir: str, ready: Any, commands: Any, out: Any) -> None:
    """Run the write phases the parent sends; answer each with its writes and its floor publishes.

    In paced phases each write is followed by a bare PUBLISH on the floor channel, so the floor is
    measured at the same moments, through the same processes, as the writes.
    """
    from app.core import snapshot

    controller = _controller(url, data_dir)
    ready.put(("writer", controller.version))
    sequence = 0
    while (command := commands.get()) is not None:
        kind, count, interval = command
        writes: list[Write] = []
        floor: list[Write] = []
        next_at = time.monotonic()
        for i in range(count):
            next_at += interval
            start = time.monotonic()
            if kind == "download":
                controller.download_model(f"bench/model-{i:05d}", requested_by="bench")
            else:
                controller.add_log(f"bench {kind} write {i}", "bench")
            if kind == "file":
                snapshot.persist(controller.store, controller.settings.resolved_state_file)
            writes.append(Write(controller.version, start, time.monotonic()))
            if interval and kind != "file":
                sequence += 1
                start = time.monotonic()
                controller.redis.publish(FLOOR_CHANNEL, sequence)
                floor.append(Write(sequence, start, time.monotonic()))
            time.sleep(max(0.0, next_at - time.monotonic()))
        out.put((writes, floor))
    controller.close()


def poller_main(path: str, ready: Any, stop: Any, out: Any) -> None:
    """The naive replica: reload the JSON snapshot file every second."""
    from app.core.snapshot import load_file

    seen: list[tuple[int, float]] = []
    ready.put(("poller", 0))
    next_at = time.monotonic()
    while not stop.is_set():
        state = load_file(Path(path))
        seen.append((state.version if state else -1, time.monotonic()))
        next_at += POLL_S
        stop.wait(max(0.0, next_at - time.monotonic()))
    out.put(seen)


# ---- analysis ------------------------------------------------------------------------------------------


def delays(writes: list[Write], applied: dict[int, float], resets: list[tuple[int, float]]) -> list[float]:
    """Write start -> applied, per write; a version skipped by a full reload counts at that reload."""
    found = []
    for write in writes:
        at = applied.get(write.version)
        if at is None:
            at = next((t for v, t in resets if v >= write.version and t >= write.start), None)
        if at is None:
            raise RuntimeError(f"version {write.version} never reached a reader")
        found.append(at - write.start)
    return found


def poll_delays(writes: list[Write], seen: list[tuple[int, float]]) -> list[float]:
    """Write start -> the first poll that read a file at that version or later."""
    times = [t for _, t in seen]
    found = []
    for write in writes:
        index = bisect_left(times, write.end)
        while index < len(seen) and seen[index][0] < write.version:
            index += 1
        if index == len(seen):
            raise RuntimeError(f"version {write.version} never reached the file poller")
        found.append(seen[index][1] - write.start)
    return found


# ---- the run -------------------------------------------------------------------------------------------


class Cluster:
    """The writer, the readers and (for the baseline) the file poller, with their queues."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url, self.data_dir = url, str(data_dir)
        self.ready, self.out, self.commands = CTX.Queue(), CTX.Queue(), CTX.Queue()
        self.reader_out, self.seen_out, self.stop = CTX.Queue(), CTX.Queue(), CTX.Event()
        self.procs: list[Any] = []

    def start(self) -> None:
        """Spawn everyone at once (spawning is slow); the poller reads a missing file until the baseline."""
        self._spawn(writer_main, (self.url, self.data_dir, self.ready, self.commands, self.out))
        for _ in range(READERS):
            self._spawn(reader_main, (self.url, self.data_dir, self.ready, self.stop, self.reader_out))
        state_file = Path(self.data_dir) / "controller_state.json"
        self._spawn(poller_main, (str(state_file), self.ready, self.stop, self.seen_out))
        self._wait_ready(2 + READERS)

    def _spawn(self, target: Any, args: tuple[Any, ...]) -> Any:
        proc = CTX.Process(target=target, args=args, daemon=True)
        proc.start()
        self.procs.append(proc)
        return proc

    def _wait_ready(self, count: int) -> None:
        for _ in range(count):
            self.ready.get(timeout=90)

    def phase(self, kind: str, count: int, interval: float) -> tuple[list[Write], list[Write]]:
        self.commands.put((kind, count, interval))
        writes, floor = self.out.get(timeout=150)
        time.sleep(0.3)  # let the last events land
        return writes, floor

    def baseline(self, count: int, span_s: float) -> list[Write]:
        writes, _ = self.phase("file", count, span_s / count)
        time.sleep(POLL_S + 0.2)  # one more poll sees the last write
        return writes

    def results(self) -> tuple[list[Stamps], list[tuple[int, float]]]:
        """Each reader's stamps, and the poller's (version, time) reads."""
        self.stop.set()
        return [self.reader_out.get(timeout=60) for _ in range(READERS)], self.seen_out.get(timeout=60)

    def close(self) -> None:
        self.commands.put(None)
        self.stop.set()
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def seed(url: str, models: int) -> None:
    """Start from ``models`` ready records instead of an empty list (the replicas then hold them all)."""
    import redis

    from app.core.keys import Keys
    from app.core.store import Store
    from bench.bench_read_path import make_records

    client = redis.Redis.from_url(url)
    Store(client, Keys("modeldepot")).seed(1, make_records(models), [])
    client.close()


def run(quick: bool, models: int = 0) -> bool:
    count = 200 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="bench-prop-") as tmp, redis_server(Path(tmp) / "redis") as url:
        if models:
            seed(url, models)
        cluster = Cluster(url, Path(tmp) / "data")
        try:
            cluster.start()
            phases = {
                kind: cluster.phase(kind, count, interval)
                for kind, interval in (("paced", 0.005), ("burst", 0.0), ("download", 0.005))
            }
            # last: each snapshot.persist also SETs the whole document in Redis, growing its append-only file
            # with a big state every save takes long (a whole snapshot each), so fewer of them
            saves = 10 if models >= 1000 else 100 if quick else 300
            file_writes = cluster.baseline(saves, 2.0 if quick else 5.0)
            stamps, seen = cluster.results()
        finally:
            cluster.close()
    title = "bench_propagation" + (" --quick" if quick else "") + (f" --models {models}" if models else "")
    return report(title, phases, stamps, poll_delays(file_writes, seen), len(file_writes))


def p50_p99(values: list[float]) -> str:
    return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"


def report(
    title: str,
    phases: dict[str, tuple[list[Write], list[Write]]],
    stamps: list[Stamps],
    naive: list[float],
    naive_writes: int,
) -> bool:
    found = {
        kind: [d for s in stamps for d in delays(writes, s.applied, s.resets)] for kind, (writes, _) in phases.items()
    }
    floors = [d for kind in ("paced", "download") for s in stamps for d in delays(phases[kind][1], s.floor, [])]
    naive_p50, naive_p99 = percentile(naive, 50), percentile(naive, 99)
    paced = found["paced"]
    met = percentile(paced, 99) < GOAL_P99_S
    base = f"p50 {ms(naive_p50)} / p99 {ms(naive_p99)}"
    rows = [
        Row(
            f"add_log paced 5 ms, {len(phases['paced'][0])} writes x {READERS} replicas: p99",
            ms(percentile(paced, 99)),
            f"p99 {ms(naive_p99)}",
            f"{naive_p99 / percentile(paced, 99):.0f}x faster",
            "< 5 ms",
            met,
        ),
        Row(
            "  same: p50",
            ms(percentile(paced, 50)),
            f"p50 {ms(naive_p50)}",
            f"{naive_p50 / percentile(paced, 50):.0f}x faster",
        ),
    ]
    for kind, label in (("burst", "add_log back to back"), ("download", "download_model paced 5 ms")):
        values = found[kind]
        rows.append(
            Row(
                f"{label}, {len(phases[kind][0])} writes: p50 / p99",
                p50_p99(values),
                base,
                f"{naive_p99 / percentile(values, 99):.0f}x faster (p99)",
                "< 5 ms (p99)",
                percentile(values, 99) < GOAL_P99_S,
            )
        )
    for kind, label in (("paced", "add_log"), ("download", "download_model")):
        rows.append(
            Row(
                f"write call itself ({label}, paced): p50 / p99",
                p50_p99([w.end - w.start for w in phases[kind][0]]),
                "",
                "",
            )
        )
    rows.append(Row("floor: bare PUBLISH -> bare subscriber thread, same moments: p50 / p99", p50_p99(floors), "", ""))
    print_table(title, rows, notes(phases, stamps, found, naive, naive_writes))
    return met


def notes(
    phases: dict[str, tuple[list[Write], list[Write]]],
    stamps: list[Stamps],
    found: dict[str, list[float]],
    naive: list[float],
    naive_writes: int,
) -> list[str]:
    reloads = {
        kind: sum(w[0].start <= t <= w[-1].end + 0.3 for s in stamps for _, t in s.resets)
        for kind, (w, _) in phases.items()
    }
    first, last = min(w[0].start for w, _ in phases.values()), max(w[-1].end for w, _ in phases.values())
    pauses = [(gen, took) for s in stamps for gen, at, took in s.gc_pauses if first <= at <= last]
    late = {kind: sum(d > GOAL_P99_S for d in values) for kind, values in found.items()}
    return [
        f"Baseline: {naive_writes} writes (add_log + snapshot.persist) paced over 5 s (--quick: 2 s), a poller "
        f"reloading the file every {POLL_S:.0f} s; expected delay uniform in [0, {POLL_S:.0f} s) plus the "
        f"save, so p50 ≈ {POLL_S / 2 * 1000:.0f} ms and p99 ≈ {POLL_S * 0.99 * 1000:.0f} ms; "
        f"measured p50 {ms(percentile(naive, 50))} / p99 {ms(percentile(naive, 99))}, max {ms(max(naive))}.",
        "Deliveries later than 5 ms / longest: "
        + ", ".join(f"{kind} {late[kind]} of {len(v)} / {ms(max(v))}" for kind, v in found.items())
        + ".",
        "Full reloads (Listener.resync -> Store.read_state) in the readers: "
        + ", ".join(f"{kind} {n}" for kind, n in reloads.items())
        + f". GC pauses in the readers during the phases: {len(pauses)}, longest "
        + (ms(max(t for _, t in pauses)) if pauses else "-")
        + ".",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 writes per phase (< 30 s)")
    parser.add_argument("--models", type=int, default=0, help="seed this many model records first (default 0)")
    args = parser.parse_args()
    return 0 if run(args.quick, args.models) else 1


if __name__ == "__main__":
    raise SystemExit(main())
