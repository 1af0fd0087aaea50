"""Model records, their statuses, and their lifecycle: transitions as ``ModelRecord`` methods, checked against one
table of the moves allowed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypedDict

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
UNDER_WAY = frozenset({Status.QUEUED, Status.DOWNLOADING})
"""Statuses of a download a job may still be working on (a cancel or a pause can stop it)."""
_STOP_FLAGS = {Status.CANCELLED: "cancel_requested", Status.PAUSED: "pause_requested"}

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


class Unchanged(Exception):
    """Raised by a transition (or any mutation given to ``Store.update``): the record stays as it is, because it
    moved on or already is where the transition leads. Nothing is written."""


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


class RecordView(TypedDict):
    """A record as the page, the command line and the API read it (``ModelRecord.model_dump(mode="json")``).

    The replica hands out the dicts it holds, so callers read them and never change them.
    """

    name: str
    repo_id: str
    revision: str | None
    commit: str | None
    status: str
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    speed_bps: float
    eta_s: float | None
    size_bytes: int
    error: str | None
    requested_by: str | None
    requested_at: float | None
    finished_at: float | None
    allow_patterns: list[str] | None
    ignore_patterns: list[str] | None
    job_id: str | None
    attempt: int
    cancel_requested: bool
    pause_requested: bool
    retry: dict[str, Any] | None
    updated_at: float


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

    # ---- lifecycle: each transition returns a new record, checked against the transition table -------------
    # A transition that no longer applies (the record moved on) raises Unchanged; one the table forbids raises
    # ConflictError. Store.update sets ``updated_at`` when it writes.

    @classmethod
    def requested(cls, name: str, repo_id: str, *, job_id: str, requested_by: str, revision: str | None = None,
                  allow_patterns: list[str] | None = None, ignore_patterns: list[str] | None = None) -> ModelRecord:
        """A new download, queued as the first attempt of job ``job_id``."""
        return cls(name=name, repo_id=repo_id, revision=revision, status=Status.QUEUED, allow_patterns=allow_patterns,
                   ignore_patterns=ignore_patterns, requested_by=requested_by, requested_at=time.time(),
                   job_id=job_id, attempt=1)

    @classmethod
    def adopted(cls, name: str, repo_id: str, *, revision: str | None, commit: str, size_bytes: int, files: int,
                found_at: float) -> ModelRecord:
        """A model found complete in the models dir (e.g. from ``hf download``): ready, requested by nobody."""
        return cls(name=name, repo_id=repo_id, revision=revision, commit=commit, status=Status.READY,
                   size_bytes=size_bytes, files_done=files, files_total=files, bytes_done=size_bytes,
                   bytes_total=size_bytes, requested_by="found on disk", requested_at=found_at,
                   finished_at=time.time())

    def owned_by(self, job_id: str) -> bool:
        """True while the record still belongs to job ``job_id``: a late, repeated or superseded job changes nothing."""
        return self.job_id == job_id

    @property
    def active_job(self) -> str | None:
        """The job of a download still queued or running (a removal stops it first); None otherwise."""
        return self.job_id if self.status in UNDER_WAY else None

    @property
    def stop_asked(self) -> Status | None:
        """What a user asked this download to stop as: cancelled (a cancel wins over a pause), paused, or None."""
        if self.cancel_requested:
            return Status.CANCELLED
        return Status.PAUSED if self.pause_requested else None

    def claim(self) -> ModelRecord:
        """queued -> downloading, by the job it waits for; Unchanged once it is asked to stop or stopped."""
        if self.status not in UNDER_WAY or self.stop_asked is not None:
            raise Unchanged
        return self._to(Status.DOWNLOADING, error=None)

    def planned(self, *, commit: str, bytes_total: int, files_total: int, bytes_needed: int) -> ModelRecord:
        """A download's plan: the commit, its size, and the bytes already on the volume count as done."""
        self._expect(Status.DOWNLOADING)
        return self._to(Status.DOWNLOADING, commit=commit, bytes_total=bytes_total, files_total=files_total,
                        bytes_done=bytes_total - bytes_needed, retry=None)

    def progressed(self, *, bytes_done: int, bytes_total: int, files_done: int, files_total: int, speed_bps: float,
                   eta_s: float | None, retry: RetryState | None) -> ModelRecord:
        """A progress tick of a running download (``retry`` while it waits out an outage)."""
        self._expect(Status.DOWNLOADING)
        return self._to(Status.DOWNLOADING, bytes_done=bytes_done, bytes_total=bytes_total, files_done=files_done,
                        files_total=files_total, speed_bps=speed_bps, eta_s=eta_s, retry=retry)

    def ready(self, *, commit: str, size_bytes: int, bytes_total: int, files_total: int) -> ModelRecord:
        """downloading -> ready: every file is on the volume. The one place that lists a finished download's fields."""
        self._expect(Status.DOWNLOADING)
        return self._to(Status.READY, commit=commit, size_bytes=size_bytes, bytes_done=bytes_total,
                        bytes_total=bytes_total, files_done=files_total, files_total=files_total, speed_bps=0.0,
                        eta_s=None, error=None, finished_at=time.time(), cancel_requested=False,
                        pause_requested=False, retry=None)

    def stopped(self, status: Status, reason: str | None = None) -> ModelRecord:
        """A download under way that ends short of ready: ``failed`` (with ``reason``), ``cancelled`` or ``paused``.

        Raises:
            Unchanged: the download is no longer under way (a late or repeated ending changes nothing).
            ValueError: ``status`` is not failed, cancelled or paused.
        """
        if status not in STOPPED:
            raise ValueError(f"a download cannot stop as {status.value}")
        if self.status not in UNDER_WAY:
            raise Unchanged
        return self._ended(status, reason)

    def cancelled_while_paused(self) -> ModelRecord:
        """paused -> cancelled, by a user (its kept partial files are deleted next)."""
        self._expect(Status.PAUSED)
        return self._ended(Status.CANCELLED, None)

    def requeued(self, job_id: str, attempt: int) -> ModelRecord:
        """queued or downloading -> queued as attempt ``attempt`` under a new job (its last one died)."""
        if self.status not in UNDER_WAY:
            raise Unchanged
        return self._queued(job_id, attempt)

    def rerequested(self, job_id: str, *, requested_by: str) -> ModelRecord:
        """A stopped download (failed, cancelled, paused) queued again by a user, as a first attempt.

        The byte counts stay: the files on the volume are resumed (and the worker recounts them anyway).

        Raises:
            ConflictError: the download is not stopped.
        """
        if self.status not in STOPPED:
            raise ConflictError(f"{self.name} is {self.status.value}; only a stopped download can be queued again.")
        return self._queued(job_id, 1, requested_by=requested_by, requested_at=time.time(), files_done=0)

    def removing(self, job_id: str) -> ModelRecord:
        """-> removing by the removal job ``job_id``; a download still under way is asked to cancel first."""
        cancel = self.cancel_requested if self.status is Status.REMOVING else self.active_job is not None
        return self._to(Status.REMOVING, job_id=job_id, cancel_requested=cancel)

    def removal_failed(self, reason: str) -> ModelRecord:
        """removing -> failed: the files could not be deleted."""
        self._expect(Status.REMOVING)
        return self._to(Status.FAILED, error=reason)

    def broken(self, commit: str, reason: str, *, files_gone: bool = False) -> ModelRecord:
        """ready at ``commit`` -> failed: its files fail verification, or (``files_gone``) left the models dir.

        Raises:
            Unchanged: the record is no longer ready at ``commit``.
        """
        if self.status is not Status.READY or self.commit != commit:
            raise Unchanged
        return self._to(Status.FAILED, error=reason, size_bytes=0 if files_gone else self.size_bytes)

    def stop_requested(self, status: Status) -> ModelRecord:
        """Ask the job of a download under way to stop as ``status`` (cancelled or paused): the job's progress
        check sees the flag within a second. Unchanged if it is not under way or was asked already."""
        flag = _STOP_FLAGS[status]
        if self.status not in UNDER_WAY or getattr(self, flag):
            raise Unchanged
        return self._to(self.status, **{flag: True})

    def _ended(self, status: Status, reason: str | None) -> ModelRecord:
        """The one place that lists the fields of a stopped download. A paused one is not finished: it keeps its
        ``finished_at``."""
        finished_at = time.time() if status in FINISHED else self.finished_at
        return self._to(status, error=reason, finished_at=finished_at, speed_bps=0.0, eta_s=None, retry=None,
                        cancel_requested=False, pause_requested=False)

    def _queued(self, job_id: str, attempt: int, **changes: Any) -> ModelRecord:
        return self._to(Status.QUEUED, job_id=job_id, attempt=attempt, error=None, finished_at=None, speed_bps=0.0,
                        eta_s=None, retry=None, cancel_requested=False, pause_requested=False, **changes)

    def _expect(self, status: Status) -> None:
        if self.status is not status:
            raise Unchanged

    def _to(self, status: Status, **changes: Any) -> ModelRecord:
        check_transition(self.name, self.status, status)
        return self.model_copy(update={"status": status, **changes})


def owned(record: ModelRecord | None, job_id: str) -> ModelRecord:
    """``record`` if it still belongs to job ``job_id`` (the one job guard of every job, hook and watchdog write).

    Raises:
        Unchanged: the record is gone, or another job took it over.
    """
    if record is None or not record.owned_by(job_id):
        raise Unchanged
    return record


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
