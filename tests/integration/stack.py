"""Helpers to run real `modeldepot worker` processes against the test's Redis and local hub."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from app.core.controller import Controller
from tests.ui.servers import wait_until as wait_for


class WorkerProcess:
    """A forking RQ worker (`python -m app.cli worker`) in its own process group."""

    def __init__(self, env: dict[str, str], log_dir: Path, queues: str = "maintenance,downloads") -> None:
        self.log = open(log_dir / f"worker-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", queues],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def horse_pids(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill_horse(self) -> bool:
        pids = self.horse_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return bool(pids)

    def kill_all(self) -> None:
        """SIGKILL the worker and its work-horse (RQ puts the horse in a process group of its own)."""
        horses = self.horse_pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill_all()
        self.log.close()


def wait_status(controller: Controller, name: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record = controller.models.get(name)
        return record if record and record["status"] in statuses else None

    try:
        return wait_for(check, timeout, f"{name} to become {statuses}")  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"{name} is {controller.models.get(name)}; wanted {statuses}") from None


def wait_snapshot(state_file: Path, check: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
    """Wait until controller_state.json satisfies ``check``.

    The hook writes the file after the change it records is published, so a replica can see a change a
    moment before the file does.
    """
    def read() -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads(state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return doc if check(doc) else None

    try:
        return wait_for(read, timeout, f"{state_file.name} to match")  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"{state_file} never matched; it holds {state_file.read_text()[:2000]}") from None
