"""The Controller: every UI process's handle on the shared state.

Reads come from the in-memory replica (kept current by :mod:`app.core.sync`); writes go to Redis through
:class:`app.core.store.Store`, and downloads/removals become RQ jobs through :class:`app.core.jobqueue.JobQueue`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from app.core import eviction, snapshot, volume
from app.core.connection import BRIEF_S, connect
from app.core.errors import ConflictError, InvalidInputError, NotFoundError, StateFileError, StateUnavailableError
from app.core.jobqueue import JobQueue, new_job_id
from app.core.keys import Keys
from app.core.quota import Limits, RoomPlan, Victim, eviction_order, plan_prune
from app.core.records import UNDER_WAY, ModelRecord, RecordView, Status, Unchanged, owned
from app.core.seeding import restore_from_snapshot
from app.core.settings import Settings, get_settings
from app.core.store import SYSTEM_USER, Change, LogEntry, Mutation, Store
from app.core.sync import Applied, Listener, Replica
from app.core.validation import parse_model_name, validate_patterns, validate_revision

log = logging.getLogger(__name__)

_RETRYABLE = frozenset({Status.FAILED, Status.CANCELLED})
_RESUMABLE = frozenset({Status.PAUSED})


@dataclass(frozen=True)
class Outcome:
    """What an action did, in words for the user."""

    name: str
    message: str
    changed: bool
    job_id: str | None = None


@dataclass(frozen=True)
class Room:
    """The models volume against its limits: what the disk panel, ``modeldepot status`` and ``prune`` show."""

    usage: volume.Usage
    limits: Limits
    prune: RoomPlan
    """What a prune would remove now (nothing when the volume is within its limits)."""
    next_victims: tuple[Victim, ...]
    """The models eviction would take first, least recently used first (a few)."""
    atime_mode: str
    """``relatime``, ``strictatime`` or ``noatime`` (last use then falls back to the download time)."""


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` did (or, in a dry run, would do)."""

    plan: RoomPlan
    removing: tuple[str, ...]
    """Models marked for removal (their removal jobs are queued); empty in a dry run."""
    dry_run: bool


class _AlreadyRequested(Exception):
    """A download of a model already queued, downloading or ready: nothing is written."""

    def __init__(self, record: ModelRecord) -> None:
        super().__init__(record.name)
        self.record = record


@dataclass(frozen=True)
class _Stop:
    """How cancel and pause differ; everything else about stopping a download they share."""

    verb: str
    status: Status
    """What a queued download becomes at once (a running one when its job sees the request)."""
    done: str
    doing: str
    stop_job_now: bool
    """Send RQ's stop-job command at once. A pause does not: its job stops on ``flag`` within a second and
    keeps its files; the watchdog sends the command only if it did not (see ``app/watchdog.py``)."""
    discards: bool
    """Delete the partial files of a download stopped while queued."""


_CANCEL = _Stop("cancel", Status.CANCELLED, "Cancelled", "Cancelling", stop_job_now=True, discards=True)
_PAUSE = _Stop("pause", Status.PAUSED, "Paused", "Pausing", stop_job_now=False, discards=False)


class Controller:
    """The shared list of models and the event log, identical in every process.

    ``Controller()`` reads the settings from the environment; tests pass ``settings`` or ``connection``.
    Constructing one only loads the replica: the process that starts it seeds an empty Redis first
    (:mod:`app.core.seeding`); the listener seeds again if Redis comes back empty while it runs.
    """

    def __init__(self, settings: Settings | None = None, connection: redis.Redis | None = None, *,
                 listen: bool = True) -> None:
        self.settings = settings or get_settings()
        self.redis = connection if connection is not None else connect(self.settings)
        self.brief_redis = connection if connection is not None else connect(self.settings, patience_s=BRIEF_S)
        """For what must notice an outage rather than wait it out: the listener, sign-in checks, health probes."""
        self.sender = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.keys = Keys(self.settings.key_prefix)
        self.store = Store.for_settings(self.redis, self.settings, sender=self.sender)
        self.brief_store = Store.for_settings(self.brief_redis, self.settings, sender=self.sender)
        """The store on :attr:`brief_redis`: reads that report an outage at once (the listener's, health, metrics)."""
        self.jobs = JobQueue(self.redis, self.settings)
        self.replica = Replica(self.settings.log_size)
        self._state_file: Path = self.settings.resolved_state_file
        self._listener: Listener | None = None
        self._load_state()
        if listen:
            self.start()

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start following the events channel (idempotent)."""
        if self._listener is None or not self._listener.is_alive():
            self._listener = Listener(self.brief_store, self.replica, on_lost=self._restore)
            self._listener.start()

    def close(self, *, wait: bool = True) -> None:
        """Stop following the events channel. ``wait=False`` does not wait for the listener's current read (up to
        its poll interval): for a process about to exit, which need not join a daemon thread (Ctrl-C on
        ``modeldepot logs -f`` then ends it in about a tenth of a second)."""
        if self._listener is not None:
            self._listener.stop()
            if wait:
                self._listener.join(timeout=5)
            self._listener = None

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reads (memory only) ---------------------------------------------------------------------
    @property
    def models(self) -> dict[str, RecordView]:
        return self.replica.models

    @property
    def logs(self) -> list[str]:
        return list(self.replica.logs)

    @property
    def version(self) -> int:
        return self.replica.version

    @property
    def structural_version(self) -> int:
        """The last version that changed more than download progress (pages refresh those at once)."""
        return self.replica.structural_version

    @property
    def in_sync(self) -> bool:
        """True while the listener is connected and no event Redis already holds is missing here."""
        listener = self._listener
        return bool(listener and listener.in_sync)

    @property
    def version_lag(self) -> int:
        listener = self._listener
        return max(0, listener.redis_version - self.version) if listener else 0

    def fetch_models(self) -> list[RecordView]:
        """Every model record as a plain dict, sorted by name.

        The dicts are shared with the replica (that is what makes this call cheap): read them, don't change them.
        """
        return self.replica.sorted_models()

    def get_model(self, model_name: str) -> RecordView:
        """Raises: NotFoundError."""
        name = _record_name(model_name)
        record = self.replica.models.get(name)
        if record is None:
            raise NotFoundError(f"{name} is not in the list; check the name with `modeldepot ls`.")
        return record.copy()

    def get_logs(self) -> list[str]:
        """The shared event log, oldest first."""
        return list(self.replica.logs)

    # ---- writes ----------------------------------------------------------------------------------
    def download_model(self, model_name: str, revision: str | None = None,
                       allow_patterns: list[str] | None = None, ignore_patterns: list[str] | None = None,
                       requested_by: str | None = None) -> Outcome:
        """Queue a download of ``org/name`` (or ``org/name@revision``).

        Raises:
            InvalidInputError: the name, revision or patterns are not valid (nothing is queued).
            ConflictError: the model is being removed.
            StateUnavailableError: Redis is unreachable.
        """
        repo_id, revision = _split(model_name, revision)
        allow, ignore = validate_patterns(allow_patterns), validate_patterns(ignore_patterns)
        name = repo_id if revision is None else f"{repo_id}@{revision}"
        who = requested_by or SYSTEM_USER
        job_id = new_job_id("dl")

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            if current is not None and current.status in (*UNDER_WAY, Status.READY):
                raise _AlreadyRequested(current)
            if current is not None and current.status is Status.REMOVING:
                raise ConflictError(f"{name} is being removed; wait until it is gone, then download again.")
            record = ModelRecord.requested(name, repo_id, revision=revision, allow_patterns=allow,
                                           ignore_patterns=ignore, requested_by=who, job_id=job_id)
            return record, LogEntry(who, f"queued download of {name}")

        try:
            self._update(name, mutate)
        except _AlreadyRequested as already:
            return _already(already.record)
        self._enqueue_download(name, job_id)
        return Outcome(name, f"Queued {name}.", True, job_id)

    def retry_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Queue a failed or cancelled download again with the same parameters.

        Raises:
            NotFoundError, ConflictError, StateUnavailableError.
        """
        name = _record_name(model_name)
        job_id = self._requeue(name, requested_by or SYSTEM_USER, _RETRYABLE, _not_retryable, what="retried")
        return Outcome(name, f"Queued {name} again.", True, job_id)

    def resume_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Queue a paused download again; it goes on from the files it already has on the volume.

        Raises:
            NotFoundError, ConflictError, StateUnavailableError.
        """
        name = _record_name(model_name)
        job_id = self._requeue(name, requested_by or SYSTEM_USER, _RESUMABLE, _not_resumable, what="resumed")
        return Outcome(name, f"Resumed {name}; it goes on from what is already downloaded.", True, job_id)

    def _requeue(self, name: str, who: str, allowed: frozenset[Status], refusal: Callable[[str, Status], str], *,
                 what: str) -> str:
        """Move a stopped download back to ``queued`` under a new job and enqueue it; returns the job id.

        The bytes counts stay: the files on the volume are resumed, and the worker recomputes them anyway.
        """
        job_id = new_job_id("dl")

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            current = _require(name, current)
            if current.status not in allowed:
                raise ConflictError(refusal(name, current.status))
            return current.rerequested(job_id, requested_by=who), LogEntry(who, f"{what} download of {name}")

        self._update(name, mutate)
        self._enqueue_download(name, job_id)
        return job_id

    def cancel_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Cancel a queued, running or paused download; its partial files are deleted.

        Raises:
            NotFoundError, ConflictError, StateUnavailableError.
        """
        name = _record_name(model_name)
        who = requested_by or SYSTEM_USER
        current = _require(name, self.store.get(name))
        if current.status is Status.PAUSED:
            outcome = self._cancel_paused(name, who)
            if outcome is not None:
                return outcome
            current = _require(name, self.store.get(name))  # resumed in between: cancel it where it is now
        if current.status not in UNDER_WAY:
            raise ConflictError(f"{name} is {current.status.value}, not downloading; nothing to cancel.")
        return self._stop(name, current, who, _CANCEL)

    def pause_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Pause a queued or running download; its partial files stay for :meth:`resume_download`.

        Raises:
            NotFoundError, ConflictError, StateUnavailableError.
        """
        name = _record_name(model_name)
        current = _require(name, self.store.get(name))
        if current.status not in UNDER_WAY:
            raise ConflictError(_not_pausable(name, current.status))
        if current.cancel_requested:
            raise ConflictError(f"{name} is being cancelled; it cannot be paused.")
        return self._stop(name, current, requested_by or SYSTEM_USER, _PAUSE)

    def _stop(self, name: str, current: ModelRecord, who: str, stop: _Stop) -> Outcome:
        """Take a waiting job off its queue and mark the record at once, or ask the running job to stop."""
        if current.job_id and self.jobs.cancel_queued(current.job_id):
            return self._mark_stopped_queued(name, current.job_id, who, stop)
        return self._stop_running(name, current.job_id, who, stop)

    def _mark_stopped_queued(self, name: str, job_id: str, who: str, stop: _Stop) -> Outcome:
        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            record = owned(current, job_id)
            if record.status is not Status.QUEUED:
                raise Unchanged
            return record.stopped(stop.status), LogEntry(who, f"{stop.status.value} download of {name} (was queued)")

        change = self._update(name, mutate)
        if change is None:  # a worker took it in between; stop it where it runs
            return self._stop_running(name, job_id, who, stop)
        record = change.record
        if stop.discards and (record.attempt > 1 or record.bytes_done > 0):
            self.jobs.enqueue_discard(record.repo_id, record.commit)  # files of an earlier attempt or a pause
        self._save_state()
        return Outcome(name, f"{stop.done} {name}.", True, job_id)

    def _stop_running(self, name: str, job_id: str | None, who: str, stop: _Stop) -> Outcome:
        asked = self._request_stop(name, who, stop)
        if stop.stop_job_now and job_id:
            self.jobs.stop_running(job_id)
        if not asked and not stop.stop_job_now:
            return Outcome(name, f"{name} is already {stop.doing.lower()}; wait a moment.", False, job_id)
        return Outcome(name, f"{stop.doing} {name}…", True, job_id)

    def _request_stop(self, name: str, who: str, stop: _Stop) -> bool:
        """Set the record's ``cancel_requested``/``pause_requested``; the job's progress check sees it within a
        second. False if it was set already (or the download ended)."""
        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            if current is None:
                raise Unchanged
            return current.stop_requested(stop.status), LogEntry(who, f"asked to {stop.verb} the download of {name}")

        return self._update(name, mutate) is not None

    def _cancel_paused(self, name: str, who: str) -> Outcome | None:
        """paused -> cancelled, and a job deletes the partial files; None if the record is no longer paused."""
        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            if current is None:
                raise Unchanged
            return current.cancelled_while_paused(), LogEntry(who, f"cancelled download of {name} (was paused)")

        change = self._update(name, mutate)
        if change is None:
            return None
        record = change.record
        self.jobs.enqueue_discard(record.repo_id, record.commit)
        self._save_state()
        return Outcome(name, f"Cancelled {name}.", True, record.job_id)

    def remove_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Delete a model's files (as a job) and drop it from the list; cancels its download first.

        Raises:
            NotFoundError, StateUnavailableError.
        """
        name = _record_name(model_name)
        who = requested_by or SYSTEM_USER
        job_id = new_job_id("rm")

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            current = _require(name, current)
            if current.status is Status.REMOVING:
                raise Unchanged
            return current.removing(job_id), LogEntry(who, f"removing {name}")

        change = self._update(name, mutate)
        if change is None:
            return Outcome(name, f"{name} is already being removed.", False)
        download = change.before.active_job if change.before else None
        if download and not self.jobs.cancel_queued(download):
            self.jobs.stop_running(download)
        self.jobs.enqueue_remove(name, job_id, download)
        return Outcome(name, f"Removing {name}…", True, job_id)

    def verify_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Re-check a ready model's files against the Hub's checksums (as a job).

        Raises:
            NotFoundError, ConflictError, StateUnavailableError.
        """
        name = _record_name(model_name)
        record = _require(name, self.store.get(name))
        if record.status is not Status.READY:
            raise ConflictError(f"{name} is {record.status.value}; only ready models can be verified.")
        job_id = self.jobs.enqueue_verify(name)
        self.add_log(f"asked to verify {name}", requested_by)
        return Outcome(name, f"Verifying {name}; the result appears in the log.", True, job_id)

    # ---- lifecycle on disk: update checks, updates, pins, room ----------------------------------------
    def check_updates(self, model_name: str | None = None, requested_by: str | None = None) -> Outcome:
        """Ask the Hub (as a maintenance job) for the newest commit of one model's branch, or of every ready
        model that follows a branch; the records show the result (``update_available``, ``latest_commit``).

        Raises:
            NotFoundError: no such model.
            ConflictError: the model follows a commit or a tag, which never moves.
            StateUnavailableError: Redis is unreachable.
        """
        names: list[str] | None = None
        what = "every model that follows a branch"
        if model_name is not None:
            name = _record_name(model_name)
            record = _require(name, self.store.get(name))
            if not record.follows_branch:
                raise ConflictError(f"{name} follows {record.revision}, a {record.ref_kind or 'commit'} that never "
                                    "moves: there is nothing to check.")
            names, what = [name], name
        elif not any(ModelRecord.model_validate(m).follows_branch for m in self.replica.models.values()):
            return Outcome("", "No model follows a branch; there is nothing to check.", False)
        job_id = self.jobs.enqueue_check(names)
        self.add_log(f"asked to check {what} for updates", requested_by)
        return Outcome(model_name or "", f"Checking {what} for updates; the list shows the result.", True, job_id)

    def update_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Download the newest commit of a ready model's branch with its own patterns (blobs already on the volume
        are not fetched again), then drop the old revision's unshared files. The model stays usable at its
        old commit until the new one is verified; a failed update leaves it ready there with the reason.

        Raises:
            NotFoundError, ConflictError (not ready, or follows a commit or tag), StateUnavailableError.
        """
        name = _record_name(model_name)
        who = requested_by or SYSTEM_USER
        job_id = new_job_id("dl")

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            current = _require(name, current)
            return current.update_requested(job_id, requested_by=who), LogEntry(who, f"updating {name}"
                                                                                 f"{_update_span(current)}")

        change = self._update(name, mutate)
        assert change is not None
        self._enqueue_download(name, job_id)
        before = change.before
        assert before is not None and before.commit is not None
        return Outcome(name, f"Updating {name}{_update_span(before)}; it stays usable at {before.commit[:7]} until "
                             "the new commit is verified.", True, job_id)

    def pin_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Keep a model from ever being evicted (admins).

        Raises:
            NotFoundError, ConflictError (being removed), StateUnavailableError.
        """
        return self._pin(model_name, True, requested_by or SYSTEM_USER)

    def unpin_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        """Let eviction remove a model again once it is idle (admins).

        Raises:
            NotFoundError, ConflictError (being removed), StateUnavailableError.
        """
        return self._pin(model_name, False, requested_by or SYSTEM_USER)

    def _pin(self, model_name: str, pinned: bool, who: str) -> Outcome:
        name = _record_name(model_name)
        verb = "pinned" if pinned else "unpinned"

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            return _require(name, current).pinned_as(pinned), LogEntry(who, f"{verb} {name}")

        if self._update(name, mutate) is None:
            return Outcome(name, f"{name} is already {verb}.", False)
        self._save_state()
        hint = "; eviction never removes it" if pinned else "; eviction may remove it once it is idle"
        return Outcome(name, f"{verb.capitalize()} {name}{hint}.", True)

    def room(self) -> Room | None:
        """The models volume against the quota and watermarks, and what eviction would take first; None if the
        volume is not mounted here."""
        models_dir = self.settings.resolved_models_dir
        if not models_dir.is_dir():
            return None
        usage = volume.usage(models_dir)
        limits = Limits.from_settings(self.settings)
        records = list(self.replica.models.values())
        victims = eviction_order(records, min_idle_s=limits.min_idle_s, now=_now())
        return Room(usage=usage, limits=limits, prune=plan_prune(usage, records, limits),
                    next_victims=tuple(victims[:5]), atime_mode=volume.atime_mode(models_dir))

    def prune(self, *, dry_run: bool = False, requested_by: str | None = None) -> Pruned:
        """Remove (or, with ``dry_run``, list) the least recently used unpinned idle models until the models fit
        the quota and the volume is under the low watermark. The removals are the normal removal jobs.

        Raises:
            ConflictError: the models volume is not mounted on this host.
            StateUnavailableError: Redis is unreachable.
        """
        models_dir = self.settings.resolved_models_dir
        if not models_dir.is_dir():
            raise ConflictError(f"The models volume ({models_dir}) is not mounted here; run prune on a host that "
                                "mounts it (a worker's host), or set MODELDEPOT_MODELS_DIR.")
        limits = Limits.from_settings(self.settings)
        if dry_run:
            return Pruned(self._prune_plan(models_dir, limits), (), True)
        with self.store.holding_room(wait_s=30):
            plan = self._prune_plan(models_dir, limits)
            removing = tuple(v.name for v in plan.victims if self._evict(v, limits, requested_by))
        if removing:
            self._save_state()
        return Pruned(plan, removing, False)

    def _prune_plan(self, models_dir: Path, limits: Limits) -> RoomPlan:
        state = self.store.read_state()  # fresh: the lock holder must not count on a replica a moment behind
        return plan_prune(volume.usage(models_dir), state.models.values(), limits)

    def _evict(self, victim: Victim, limits: Limits, requested_by: str | None) -> bool:
        job_id = new_job_id("rm")
        who = f" (asked by {requested_by})" if requested_by else ""
        change = eviction.mark(self.store, victim, job_id, reason=f"to bring the models within their limits{who}",
                               min_idle_s=limits.min_idle_s)
        if change is None:
            return False
        self._apply_own(change.event)
        self.jobs.enqueue_remove(victim.name, job_id)
        return True

    def disk_usage(self) -> dict[str, int] | None:
        """Total/used/free bytes of the models volume, the models' size and the bytes in partial files; None if
        the volume is not mounted here."""
        models_dir = self.settings.resolved_models_dir
        if not models_dir.is_dir():
            return None
        usage = shutil.disk_usage(models_dir)
        models_bytes = sum(int(m.get("size_bytes") or 0) for m in self.replica.models.values())
        return {"total": usage.total, "used": usage.used, "free": usage.free, "models_bytes": models_bytes,
                "partial_bytes": volume.partial_bytes(models_dir)}

    def add_log(self, what: str, who: str | None = None) -> None:
        self._apply_own(self.store.append_log(LogEntry(who or SYSTEM_USER, what)))

    # ---- state -----------------------------------------------------------------------------------
    def _enqueue_download(self, name: str, job_id: str) -> None:
        try:
            self.jobs.enqueue_download(name, job_id)
        except (redis.RedisError, StateUnavailableError) as e:
            # The record is queued: the watchdog enqueues a queued record whose job is missing, so the request
            # stands, and saying "nothing was changed" would be wrong.
            log.warning("could not enqueue %s (%s); the watchdog queues it again", name, type(e).__name__)

    def _update(self, name: str, mutate: Mutation) -> Change | None:
        """``Store.update``, applied to this replica at once."""
        change = self.store.update(name, mutate)
        if change is not None:
            self._apply_own(change.event)
        return change

    def _apply_own(self, event: dict[str, Any]) -> None:
        """Apply our own write now so a read right after it sees it (the listener skips it later)."""
        if self.replica.apply(event) is not Applied.GAP:
            return
        listening = self._listener is not None and self._listener.connected.is_set()
        if not (listening and self.replica.wait_for(int(event["v"]), timeout=2.0)):
            self.replica.reset(self.store.read_state())

    def _load_state(self) -> None:
        """Load the replica from Redis (seeding is the caller's: :mod:`app.core.seeding`).

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        self.replica.reset(self.store.read_state(), force=True)

    def _restore(self) -> None:
        """The listener saw Redis lose data: seed it, or put back what the JSON snapshot has newer (the listener
        then reloads)."""
        try:
            restore_from_snapshot(self.store, self._state_file)
        except StateFileError:
            log.exception("could not restore from %s", self._state_file)

    def _save_state(self) -> None:
        """Write the snapshot to the JSON file and to Redis (significant events only)."""
        try:
            snapshot.persist(self.store, self._state_file)
        except StateFileError:
            log.exception("could not save the snapshot")


def _split(model_name: str, revision: str | None) -> tuple[str, str | None]:
    repo_id, name_revision = parse_model_name(model_name)
    if revision is not None and revision.strip() == "":
        revision = None
    if revision is not None and name_revision is not None and revision != name_revision:
        raise InvalidInputError(f"Two revisions given ({name_revision!r} in the name and {revision[:80]!r}); "
                                "give only one.")
    revision = revision if revision is not None else name_revision
    if revision is not None:
        revision = validate_revision(revision)
    return repo_id, revision


def _record_name(model_name: str) -> str:
    repo_id, revision = _split(model_name, None)
    return repo_id if revision is None else f"{repo_id}@{revision}"


def _already(record: ModelRecord) -> Outcome:
    name = record.name
    if record.status is Status.READY:
        return Outcome(name, f"{name} is already ready at commit {(record.commit or '')[:7]}; nothing to do. "
                             "To fetch a newer commit of its branch, update it.", False)
    return Outcome(name, f"{name} is already {record.status.value}.", False, record.job_id)


def _update_span(record: ModelRecord) -> str:
    """``" from b5dbad1 to 9f3c2e0"`` (the target as the last check found it), for messages and the log."""
    old = (record.commit or "")[:7]
    if record.update_available and record.latest_commit:
        return f" from {old} to {record.latest_commit[:7]}"
    return f" from {old} to the newest commit of {record.branch}"


def _now() -> float:
    return time.time()


def _not_pausable(name: str, status: Status) -> str:
    if status is Status.PAUSED:
        return f"{name} is already paused; resume it to go on."
    return f"{name} is {status.value}; only queued or downloading downloads can be paused."


def _not_retryable(name: str, status: Status) -> str:
    hint = "; resume it instead" if status is Status.PAUSED else ""
    return f"{name} is {status.value}; only failed or cancelled downloads can be retried{hint}."


def _not_resumable(name: str, status: Status) -> str:
    hint = " (retry a failed or cancelled one instead)" if status in (Status.FAILED, Status.CANCELLED) else ""
    return f"{name} is {status.value}; only paused downloads can be resumed{hint}."


def _require(name: str, record: ModelRecord | None) -> ModelRecord:
    if record is None:
        raise NotFoundError(f"{name} is not in the list; check the name with `modeldepot ls`.")
    return record
