"""Fixtures for the command-line tests: run `python -m app.cli` for real, a local hub, RQ workers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import redis

from app.core.settings import Settings
from app.core.status import worker_alive
from tests.hubserver import HubServer

Run = Callable[..., subprocess.CompletedProcess[str]]


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m app.cli ARGS` with the test's environment (MODELDEPOT_* set by ``settings_env``)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def run_many(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at the same time (each pays Python's start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run_cli(*args), commands))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed with exactly one line on stderr and no traceback; return that line."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def cli(settings_env: Settings) -> Run:
    return run_cli


@pytest.fixture
def hub() -> Iterator[HubServer]:
    server = HubServer().start()
    yield server
    server.stop()


class Worker:
    """A `modeldepot worker` process in its own process group, killed in teardown."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_alive(self, connection: redis.Redis, timeout: float = 30) -> str:
        """Wait until the worker is registered and subscribed; return its RQ name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            for key in connection.smembers("rq:workers"):
                name = key.decode().removeprefix("rq:worker:")
                if connection.hget(key, "pid") == str(self.proc.pid).encode() and worker_alive(connection, name):
                    return name
            time.sleep(0.1)
        raise AssertionError(f"worker did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the worker and its work-horse (RQ gives the horse a process group of its own)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(settings_env: Settings, hub: HubServer, tmp_path: Path) -> Iterator[Callable[[], Worker]]:
    started: list[Worker] = []
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "HF_HUB_DOWNLOAD_TIMEOUT": "5",
    }

    def start() -> Worker:
        worker = Worker(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
