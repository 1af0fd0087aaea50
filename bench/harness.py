"""What every benchmark shares: servers on 127.0.0.1, a worker subprocess, percentiles, the result table.

Benchmarks run as scripts (``python bench/<name>.py``), so each puts the repository root on ``sys.path``
before importing this module; spawned children inherit that path.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
NOOP_FUNC = "bench.harness.noop"
"""A trivial job function for plain-RQ baselines (importable once the repo root is on sys.path)."""


def noop() -> None:
    """The job of the RQ baseline: does nothing."""


# ---- figures -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p50 of [1, 2, 3, 4] is 2); ``values`` need not be sorted."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass(frozen=True)
class Row:
    """One line of a result table: figure vs baseline, and the goal the figure must meet.

    ``goal`` is text (e.g. "< 5 ms"); ``met`` None means the row is informational.
    """

    metric: str
    figure: str
    baseline: str
    ratio: str
    goal: str = ""
    met: bool | None = None


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def ratio(a: float, b: float, *, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}x" if b > 0 else "n/a"


def print_table(title: str, rows: Sequence[Row], notes: Sequence[str] = ()) -> None:
    """A Markdown table (so it pastes into docs/benchmarks.md as is)."""
    head = ("metric", "figure", "baseline (same run)", "ratio", "goal", "met")
    print_lines(title, [head, *((r.metric, r.figure, r.baseline, r.ratio, r.goal, _met(r.met)) for r in rows)],
                notes)


def print_lines(title: str, lines: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> None:
    """A Markdown table of any columns (the first line is the head), under the machine, tree, time and load."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    print(f"\n### {title}\n")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"_{machine()}; tree {revision()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average at the end {load}_\n"
    )
    for n, line in enumerate(lines):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for note in notes:
        print(f"\n{note}")
    sys.stdout.flush()


def _met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**NO**")


def revision() -> str:
    """The commit benchmarked, ``+dirty`` when the work tree has uncommitted changes."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip()


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


# ---- servers and processes -----------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A real redis-server on 127.0.0.1 (tests/redis_server.py: AOF with appendfsync always); yields its URL."""
    from tests.redis_server import RedisServer

    server = RedisServer(directory).start()
    try:
        yield server.url
    finally:
        server.stop()


def worker_env(redis_url: str, data_dir: Path, hub_url: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "MODELDEPOT_REDIS_URL": redis_url,
        "MODELDEPOT_DATA_DIR": str(data_dir),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(ROOT),
    }
    if hub_url:
        env["HF_ENDPOINT"] = hub_url
    return env


@contextlib.contextmanager
def process(args: Sequence[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process whose output goes to ``log_path``; terminated (then killed) at the end."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(args), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            yield proc
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_idle_workers(
    connection: redis.Redis,
    count: int,
    *,
    timeout: float = 60.0,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Block until ``count`` RQ workers are registered and idle (blocked on their queues)."""
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path else ""
            raise RuntimeError(f"worker exited with {proc.returncode} at start:\n{tail}")
        workers = Worker.all(connection=connection)
        if len(workers) >= count and all(w.get_state() == "idle" for w in workers):
            time.sleep(0.2)  # registered and idle is written just before the blocking dequeue
            return
        time.sleep(0.05)
    raise RuntimeError(f"{count} idle worker(s) did not show up within {timeout}s")
