"""Waits on a condition: the one polling helper, and the waits built on it for a model's status and the snapshot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.core.controller import Controller

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; return that.

    Raises:
        AssertionError: ``timeout`` seconds passed first (an AssertionError raised by ``predicate`` ends the wait
            at once).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_status(controller: Controller, name: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    """Wait until ``controller``'s replica shows ``name`` in one of ``statuses``; return the record."""
    def check() -> dict[str, Any] | None:
        record = controller.models.get(name)
        return record if record and record["status"] in statuses else None

    try:
        return wait_until(check, timeout, f"{name} to become {statuses}")
    except AssertionError:
        raise AssertionError(f"{name} is {controller.models.get(name)}; wanted {statuses}") from None


def wait_snapshot(state_file: Path, check: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
    """Wait until controller_state.json satisfies ``check``; return the document.

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
        return wait_until(read, timeout, f"{state_file.name} to match")
    except AssertionError:
        raise AssertionError(f"{state_file} never matched; it holds {state_file.read_text()[:2000]}") from None
