"""Real ``modeldepot worker`` processes against the test's Redis and local Hub, and the fixtures that start them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from app.core.settings import Settings
from app.core.status import worker_alive
from tests.hubserver import HubServer
from tests.support.waiting import wait_until


class WorkerProcess:
    """A forking RQ worker (``python -m app.cli worker``) in a process group of its own, its output in a log file.

    RQ gives each work-horse a process group of its own too, so :meth:`kill_all` kills the horse as well, as a
    host that dies would.
    """

    def __init__(self, env: dict[str, str], log_dir: Path, *, queues: str = "maintenance,downloads") -> None:
        self.log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", queues],
                                         env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def wait_alive(self, connection: redis.Redis, timeout: float = 30) -> str:
        """Wait until the worker is registered and subscribed to RQ's commands; return its RQ name."""
        def registered() -> str | None:
            assert self.proc.poll() is None, f"the worker exited:\n{self.log_path.read_text()}"
            for key in connection.smembers("rq:workers"):
                name = key.decode().removeprefix("rq:worker:")
                if connection.hget(key, "pid") == str(self.proc.pid).encode() and worker_alive(connection, name):
                    return name
            return None

        try:
            return wait_until(registered, timeout, "the worker to register", interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}; its log:\n{self.log_path.read_text()}") from None

    def horse_pids(self) -> list[int]:
        """The work-horse running a job now, if any."""
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill_horse(self) -> bool:
        """SIGKILL the work-horse only (the worker notices and goes on); False if no job was running."""
        pids = self.horse_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return bool(pids)

    def stacks(self) -> str:
        """Every thread's stack of the worker and its work-horse (SIGUSR1, see workers/__main__.py), as the log shows
        them: what a test prints when a worker seems stuck."""
        start = self.log_path.stat().st_size
        for pid in [self.proc.pid, *self.horse_pids()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        time.sleep(0.5)
        with open(self.log_path, "rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def kill_all(self) -> None:
        """SIGKILL the worker and its work-horse."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (RQ's warm shutdown), then :meth:`kill_all` after 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill_all()


@pytest.fixture
def worker_env(settings_env: Settings, hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the test's worker processes: its settings and its Hub. Add to it before start_worker."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "5"}


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker(queues=...)`` starts a :class:`WorkerProcess`; every one is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(queues: str = "maintenance,downloads") -> WorkerProcess:
        worker = WorkerProcess(worker_env, tmp_path, queues=queues)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
