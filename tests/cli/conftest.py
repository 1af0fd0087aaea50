"""Fixtures for the command-line tests: run `python -m app.cli` for real, a local hub, RQ workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.core.settings import Settings
from tests.support.hub import hub  # noqa: F401
from tests.support.workers import start_worker, worker_env  # noqa: F401

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
