"""Ctrl-C ends a following command (`logs --follow`, `pull --wait`) within a second, whenever it comes.

The commands run as real processes against the session's real Redis, directly or over the HTTP API (where they
follow its streams); SIGINT is sent right after they start following, while they are idle, while events pour in,
and to a process whose shell told it to ignore SIGINT (what a non-interactive shell does to a background job:
`modeldepot logs -f &` in a script or a CI step).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

import pytest

from app.core.controller import Controller
from app.core.settings import Settings
from tests.cli.conftest import Cli

EXIT_WITHIN = 1.0
"""Seconds from SIGINT to the process's exit."""

IGNORING_SIGINT = ["/bin/sh", "-c", "trap '' INT; exec \"$@\"", "sh"]
"""Runs a command with SIGINT ignored, as a shell starts a background job (the disposition survives exec)."""


class Follower:
    """A following command as a real process; threads drain its output so that a full pipe never blocks it."""

    def __init__(self, *args: str, ignore_sigint: bool = False, cli: Cli | None = None) -> None:
        prefix = IGNORING_SIGINT if ignore_sigint else []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "app.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli.env() if cli is not None else {**os.environ, "COLUMNS": "200"},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._printed = threading.Event()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._drains = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr, False), daemon=True),
        ]
        for drain in self._drains:
            drain.start()

    def _drain(self, stream: IO[str], lines: list[str], signals_start: bool) -> None:
        for line in stream:
            lines.append(line)
            if signals_start:
                self._printed.set()

    def wait_following(self, timeout: float = 30) -> None:
        """Wait for the first line on stdout: the command is past its start-up and following."""
        assert self._printed.wait(timeout), f"nothing printed; stderr: {''.join(self.stderr)}"

    def interrupt(self) -> tuple[float, int]:
        """Send SIGINT; return how long the process took to exit and its exit code (fail after EXIT_WITHIN)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running {EXIT_WITHIN}s after SIGINT; stderr: {''.join(self.stderr)!r}")
        for drain in self._drains:
            drain.join(timeout=5)
        return time.monotonic() - sent, code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def following(*args: str, ignore_sigint: bool = False, cli: Cli | None = None) -> Iterator[Follower]:
    follower = Follower(*args, ignore_sigint=ignore_sigint, cli=cli)
    try:
        yield follower
    finally:
        follower.kill()


@contextlib.contextmanager
def events(settings: Settings, *, every: float = 0.01) -> Iterator[None]:
    """Log lines written by another process's controller, every ``every`` seconds, while the block runs."""
    stop = threading.Event()

    def write() -> None:
        with Controller(settings, listen=False) as controller:
            while not stop.wait(every):
                controller.add_log("tick", who="writer")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join(timeout=5)


@pytest.fixture
def log_history(settings_env: Settings) -> Settings:
    """One log line, so that `logs --follow -n 1` prints it at once."""
    with Controller(settings_env, listen=False) as controller:
        controller.add_log("before following", who="bob")
    return settings_env


def stop_logs(settings: Settings, *, delay: float, busy: bool, ignore_sigint: bool = False,
              cli: Cli | None = None) -> float:
    """Start `logs --follow`, wait ``delay`` s after its first line (with events if ``busy``), Ctrl-C it."""
    with following("logs", "--follow", "-n", "1", ignore_sigint=ignore_sigint, cli=cli) as follower:
        follower.wait_following()
        with events(settings) if busy else contextlib.nullcontext():
            time.sleep(delay)
            elapsed, code = follower.interrupt()
    assert "".join(follower.stderr) == "", follower.stderr
    assert code == 0, (code, follower.stderr)
    return elapsed


@pytest.mark.parametrize(
    ("delay", "busy", "ignore_sigint"),
    [
        (0.0, False, False),
        (0.7, False, False),
        (0.0, True, False),
        (0.6, True, False),
        (0.3, False, True),
        (0.3, True, True),
    ],
    ids=[
        "right after start",
        "idle",
        "as events start",
        "while events arrive",
        "SIGINT ignored by the shell",
        "SIGINT ignored, events",
    ],
)
def test_ctrl_c_ends_logs_follow(cli: Cli, log_history: Settings, delay: float, busy: bool,
                                 ignore_sigint: bool) -> None:
    stop_logs(log_history, delay=delay, busy=busy, ignore_sigint=ignore_sigint, cli=cli)


@pytest.mark.direct_only
def test_ctrl_c_ends_logs_follow_twenty_times(log_history: Settings) -> None:
    rng = random.Random(20)
    runs = [(round(rng.uniform(0, 1.5), 3), i % 2 == 1) for i in range(20)]
    timings = [(delay, busy, round(stop_logs(log_history, delay=delay, busy=busy), 3)) for delay, busy in runs]
    print("\n(delay s, events, exit s after SIGINT):", timings)


@pytest.mark.parametrize("ignore_sigint", [False, True], ids=["SIGINT as usual", "SIGINT ignored by the shell"])
@pytest.mark.parametrize("delay", [0.0, 0.6], ids=["right after start", "idle"])
def test_ctrl_c_ends_pull_wait(cli: Cli, settings_env: Settings, delay: float, ignore_sigint: bool) -> None:
    """No worker runs: the download stays queued, so only Ctrl-C ends the wait (exit 0, the download goes on)."""
    name = f"org/waited-{int(delay * 10)}-{int(ignore_sigint)}"
    with following("pull", name, "--wait", ignore_sigint=ignore_sigint, cli=cli) as follower:
        follower.wait_following()
        time.sleep(delay)
        _, code = follower.interrupt()
    assert code == 0, (code, follower.stderr)
    assert follower.stdout[0] == f"Queued {name}.\n"
    assert follower.stdout[-1].startswith(f"stopped waiting; {name} goes on in the background"), follower.stdout
    assert [line.split(";")[0] for line in follower.stderr] == [
        "warning: no live worker on the downloads queue"], follower.stderr
    with Controller(settings_env, listen=False) as controller:
        assert controller.get_model(name)["status"] == "queued"
