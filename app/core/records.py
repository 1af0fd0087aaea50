"""Model records, their statuses and the transitions allowed between them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import ConflictError


class Status(StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REMOVING = "removing"
    PAUSED = "paused"


TRANSIENT = frozenset({Status.QUEUED, Status.DOWNLOADING, Status.REMOVING})
FINISHED = frozenset({Status.READY, Status.FAILED, Status.CANCELLED})
STOPPED = frozenset({Status.FAILED, Status.CANCELLED, Status.PAUSED})
"""Statuses a download rests in with its partial files possibly kept on the volume (paused, failed, cancelled)."""

# Who may move a record where. A job can never take a `ready` model back to `downloading`; only a user's
# new request (ready -> queued, at another commit) can.
_ALLOWED: dict[Status | None, frozenset[Status | None]] = {
    None: frozenset({Status.QUEUED, Status.READY}),
    Status.QUEUED: frozenset({Status.QUEUED, Status.DOWNLOADING, Status.CANCELLED, Status.FAILED,
                              Status.REMOVING, Status.PAUSED}),
    Status.DOWNLOADING: frozenset({Status.DOWNLOADING, Status.QUEUED, Status.READY, Status.FAILED,
                                   Status.CANCELLED, Status.REMOVING, Status.PAUSED}),
    Status.PAUSED: frozenset({Status.PAUSED, Status.QUEUED, Status.CANCELLED, Status.REMOVING}),
    Status.READY: frozenset({Status.READY, Status.QUEUED, Status.REMOVING, Status.FAILED}),
    Status.FAILED: frozenset({Status.FAILED, Status.QUEUED, Status.REMOVING, Status.READY}),
    Status.CANCELLED: frozenset({Status.CANCELLED, Status.QUEUED, Status.REMOVING, Status.READY}),
    Status.REMOVING: frozenset({Status.REMOVING, Status.FAILED, None}),
}


class RetryState(BaseModel):
    """A download waiting out a transient Hub or network failure: shown live as "retrying in 8 s after HTTP 503"."""

    model_config = ConfigDict(extra="ignore")

    attempt: int
    """Tries since the last byte arrived (1 = the first retry of this outage)."""
    in_s: float
    """Seconds the worker waits before the next try (as decided when it failed)."""
    next_at: float = 0.0
    """Unix time of the next try (progress writes during the wait do not move it)."""
    cause: str
    """What failed, in a few words (``HTTP 503``, ``connection reset``, ``no data for 30 s``)."""
    since: float
    """Unix time the outage began (the last time a byte arrived)."""


class ModelRecord(BaseModel):
    """One model on the volume. ``model_dump()`` keys are a stable public API for scripts and ops."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False)

    name: str
    repo_id: str
    revision: str | None = None
    commit: str | None = None
    status: Status
    bytes_done: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0
    speed_bps: float = 0.0
    eta_s: float | None = None
    size_bytes: int = 0
    error: str | None = None
    requested_by: str | None = None
    requested_at: float | None = None
    finished_at: float | None = None
    allow_patterns: list[str] | None = None
    ignore_patterns: list[str] | None = None
    job_id: str | None = None
    attempt: int = 0
    cancel_requested: bool = False
    pause_requested: bool = False
    retry: RetryState | None = None
    updated_at: float = Field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> ModelRecord:
        return cls.model_validate_json(raw)


def retry_text(record: Mapping[str, Any], *, now: float | None = None) -> str:
    """``"retrying in 8 s after HTTP 503"`` for a download waiting out an outage, ``""`` otherwise (page and CLI).

    The seconds left count down to ``retry.next_at``, never below 0.
    """
    retry = record.get("retry")
    if not isinstance(retry, dict) or record.get("status") != Status.DOWNLOADING:
        return ""
    due = float(retry.get("next_at") or 0) or float(record.get("updated_at") or 0) + float(retry.get("in_s") or 0)
    left = max(0.0, due - (time.time() if now is None else now))
    return f"retrying in {left:.0f} s after {retry.get('cause') or 'an error'}"


def disk_bytes(record: Mapping[str, Any]) -> int:
    """Bytes the model takes on the volume: its size once known, else what a download fetched so far (the page's
    size column and disk panel, ``modeldepot ls`` and the removal questions all count this way)."""
    size = int(record.get("size_bytes") or 0)
    if size or record.get("status") not in (Status.QUEUED, Status.DOWNLOADING, Status.PAUSED, Status.FAILED):
        return size
    return int(record.get("bytes_done") or 0)


def check_transition(name: str, old: Status | None, new: Status | None) -> None:
    """Raise ConflictError unless a record may move from ``old`` to ``new``.

    Raises:
        ConflictError: the move is not allowed.
    """
    if new not in _ALLOWED[old]:
        raise ConflictError(
            f"{name} is {old.value if old else 'not in the list'}; it cannot become "
            f"{new.value if new else 'removed'} now. Refresh the list and try again."
        )
