"""Model records, their statuses, and their lifecycle: transitions as ``ModelRecord`` methods, checked against one
table of the moves allowed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import ConflictError
from app.core.validation import COMMIT_ID


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
                              Status.REMOVING, Status.PAUSED, Status.READY}),
    Status.DOWNLOADING: frozenset({Status.DOWNLOADING, Status.QUEUED, Status.READY, Status.FAILED,
                                   Status.CANCELLED, Status.REMOVING, Status.PAUSED}),
    Status.PAUSED: frozenset({Status.PAUSED, Status.QUEUED, Status.CANCELLED, Status.REMOVING, Status.READY}),
    Status.READY: frozenset({Status.READY, Status.QUEUED, Status.REMOVING, Status.FAILED}),
    Status.FAILED: frozenset({Status.FAILED, Status.QUEUED, Status.REMOVING, Status.READY}),
    Status.CANCELLED: frozenset({Status.CANCELLED, Status.QUEUED, Status.REMOVING, Status.READY}),
    Status.REMOVING: frozenset({Status.REMOVING, Status.FAILED, Status.READY, None}),
}
# Moves to ready that are not a finished download: an update that failed or was cancelled falls back to the
# revision it was replacing (from queued, downloading or paused); an eviction called off (from removing).


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


class Previous(BaseModel):
    """The revision an update replaces: it stays on the volume, usable, until the new one is verified, and the
    model falls back to it if the update fails or is cancelled."""

    model_config = ConfigDict(extra="ignore")

    commit: str
    size_bytes: int = 0
    files: int = 0
    finished_at: float | None = None


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
    pinned: bool
    last_used_at: float | None
    latest_commit: str | None
    update_available: bool
    checked_at: float | None
    check_error: str | None
    ref_kind: str | None
    update_from: dict[str, Any] | None
    update_error: str | None
    evicted_at: float | None
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
    pinned: bool = False
    """Never evicted to make room (set by admins)."""
    last_used_at: float | None = None
    """Latest access time of the snapshot's files, as the workers' usage scan last read it."""
    latest_commit: str | None = None
    """The followed branch's commit on the Hub at the last update check."""
    update_available: bool = False
    checked_at: float | None = None
    check_error: str | None = None
    """Why the last update check failed (the status is not changed by it)."""
    ref_kind: str | None = None
    """What the revision is on the Hub, as the last check found it: ``branch``, ``tag`` or ``commit``."""
    update_from: Previous | None = None
    """While an update is under way: the revision it replaces."""
    update_error: str | None = None
    """Why the last update failed; the model stayed ready at its old commit."""
    evicted_at: float | None = None
    """When quota eviction decided to remove this model (removing records only; None for a user's removal)."""
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

    @property
    def follows_branch(self) -> bool:
        """True unless the revision is a commit id or the last update check found it is a tag: a branch may move
        on the Hub, so it can be checked and updated."""
        if self.revision is not None and COMMIT_ID.fullmatch(self.revision):
            return False
        return self.ref_kind != "tag"

    @property
    def branch(self) -> str:
        """The branch a model follows (``main`` when no revision was given)."""
        return self.revision or "main"

    @property
    def idle_since(self) -> float:
        """When the model was last used, falling back to when it was downloaded (no access time read yet)."""
        return idle_since({"last_used_at": self.last_used_at, "finished_at": self.finished_at,
                           "requested_at": self.requested_at, "updated_at": self.updated_at})

    def claim(self) -> ModelRecord:
        """queued -> downloading, by the job it waits for; Unchanged once it is asked to stop or stopped."""
        if self.status not in UNDER_WAY or self.stop_asked is not None:
            raise Unchanged
        return self._to(Status.DOWNLOADING, error=None)

    def planned(self, *, commit: str, bytes_total: int, files_total: int, bytes_needed: int) -> ModelRecord:
        """A download's plan: the commit, its size, and the bytes already on the volume count as done."""
        self._expect(Status.DOWNLOADING)
        latest = commit if self.update_from is not None else self.latest_commit  # an update fetches the newest
        return self._to(Status.DOWNLOADING, commit=commit, bytes_total=bytes_total, files_total=files_total,
                        bytes_done=bytes_total - bytes_needed, retry=None, latest_commit=latest)

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
                        pause_requested=False, retry=None, update_from=None, update_error=None,
                        update_available=self.latest_commit is not None and self.latest_commit != commit)

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
        if self.update_from is not None and status is not Status.PAUSED:
            return self._update_abandoned(reason or "the update was cancelled")
        return self._ended(status, reason)

    def cancelled_while_paused(self) -> ModelRecord:
        """paused -> cancelled, by a user (its kept partial files are deleted next); a paused update falls back
        to the revision it was replacing instead."""
        self._expect(Status.PAUSED)
        if self.update_from is not None:
            return self._update_abandoned("the update was cancelled")
        return self._ended(Status.CANCELLED, None)

    def update_requested(self, job_id: str, *, requested_by: str) -> ModelRecord:
        """ready -> queued as an update to the newest commit of the followed branch, by job ``job_id``.

        The ready revision stays on the volume and usable until the new one is verified.

        Raises:
            ConflictError: the model is not ready, or follows a commit or a tag.
        """
        if self.status is not Status.READY or self.commit is None:
            raise ConflictError(f"{self.name} is {self.status.value}; only a ready model can be updated. "
                                "Wait until it is ready (or Retry it) and update it then.")
        if not self.follows_branch:
            kind = "tag" if self.ref_kind == "tag" else "commit"
            raise ConflictError(f"{self.name} follows the {kind} {self.revision}, which never moves: there is "
                                f"nothing to update. Download {self.repo_id} (its main branch) to follow it.")
        previous = Previous(commit=self.commit, size_bytes=self.size_bytes, files=self.files_total,
                            finished_at=self.finished_at)
        return self._queued(job_id, 1, update_from=previous, update_error=None, requested_by=requested_by,
                            requested_at=time.time(), files_done=0, finished_at=self.finished_at)

    def _update_abandoned(self, reason: str) -> ModelRecord:
        """An update that failed or was cancelled: ready again at the revision it was replacing, the reason shown."""
        previous = self.update_from
        assert previous is not None
        return self._to(Status.READY, commit=previous.commit, size_bytes=previous.size_bytes,
                        bytes_done=previous.size_bytes, bytes_total=previous.size_bytes, files_done=previous.files,
                        files_total=previous.files, finished_at=previous.finished_at, update_from=None,
                        update_error=reason, error=None, speed_bps=0.0, eta_s=None, retry=None,
                        cancel_requested=False, pause_requested=False,
                        update_available=self.latest_commit is not None and self.latest_commit != previous.commit)

    def checked(self, *, latest_commit: str | None, ref_kind: str | None, error: str | None,
                at: float) -> ModelRecord:
        """The result of an update check. A failed check (``error``) keeps the last known commit and the status.

        Raises:
            Unchanged: the record is being removed.
        """
        if self.status is Status.REMOVING:
            raise Unchanged
        if error is not None:
            return self._to(self.status, checked_at=at, check_error=error)
        moved = ref_kind == "branch" and latest_commit is not None and latest_commit != self.commit
        return self._to(self.status, latest_commit=latest_commit, ref_kind=ref_kind, checked_at=at,
                        check_error=None, update_available=moved and self.status is Status.READY)

    def used(self, at: float) -> ModelRecord:
        """The usage scan read a new last access time. Unchanged when it is the one already recorded."""
        if self.last_used_at is not None and abs(at - self.last_used_at) < 1.0:
            raise Unchanged
        return self._to(self.status, last_used_at=at)

    def pinned_as(self, pinned: bool) -> ModelRecord:
        """Pin (never evicted) or unpin. Unchanged if it already is.

        Raises:
            ConflictError: the model is being removed.
        """
        if self.status is Status.REMOVING:
            raise ConflictError(f"{self.name} is being removed; it cannot be pinned or unpinned.")
        if self.pinned is pinned:
            raise Unchanged
        return self._to(self.status, pinned=pinned)

    def evicting(self, job_id: str, *, at: float) -> ModelRecord:
        """ready -> removing by quota eviction (job ``job_id``). Unchanged unless it is still ready and unpinned."""
        if self.status is not Status.READY or self.pinned:
            raise Unchanged
        return self._to(Status.REMOVING, job_id=job_id, evicted_at=at, cancel_requested=False)

    def eviction_called_off(self, last_used_at: float) -> ModelRecord:
        """removing (by eviction) -> ready again: the model was used at ``last_used_at``, after eviction picked it.

        Raises:
            Unchanged: it is not being evicted (a user's removal is never called off).
        """
        if self.status is not Status.REMOVING or self.evicted_at is None:
            raise Unchanged
        return self._to(Status.READY, evicted_at=None, last_used_at=last_used_at)

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
        again = self.status is Status.REMOVING  # the watchdog replacing a lost removal job
        cancel = self.cancel_requested if again else self.active_job is not None
        return self._to(Status.REMOVING, job_id=job_id, cancel_requested=cancel,
                        evicted_at=self.evicted_at if again else None)

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
        fields: dict[str, Any] = {"job_id": job_id, "attempt": attempt, "error": None, "finished_at": None,
                                  "speed_bps": 0.0, "eta_s": None, "retry": None, "cancel_requested": False,
                                  "pause_requested": False}
        return self._to(Status.QUEUED, **(fields | changes))

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


def idle_since(record: Mapping[str, Any]) -> float:
    """When a model was last used: the latest access time the usage scan read, else (none read yet, or a volume
    mounted noatime) when it was downloaded. Eviction's order, the page's "last used" and the metrics' idle age."""
    for key in ("last_used_at", "finished_at", "requested_at", "updated_at"):
        value = record.get(key)
        if value:
            return float(value)
    return 0.0


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
