"""Finds downloads whose work-horse died and puts them right within seconds, not RQ's minutes.

A ``downloading`` record whose heartbeat key expired is dead: it is queued again (a new job, attempt+1)
until ``max_attempts``, then ``failed``; one a user asked to cancel or pause becomes ``cancelled`` (its files
deleted) or ``paused`` (its files kept) instead. A live download asked to cancel or pause whose record has not
changed for :data:`_STOP_GRACE_S` (its job missed the flag) gets RQ's stop-job command. A ``queued`` or
``removing`` record whose RQ job is neither in a queue nor running (no heartbeat) — it vanished, or a worker
took it and died — gets a new job. One pass runs at a time across all processes (a Redis lock).

Heartbeats are judged only once Redis has answered steadily for a heartbeat TTL: after a failover (another
server answers) or a pass that had to wait for Redis, a live job may not have refreshed its key yet.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from app.core.errors import ModelDepotError
from app.core.jobqueue import JobQueue, new_job_id
from app.core.records import TRANSIENT, ModelRecord, Status, Unchanged, owned
from app.core.settings import Settings
from app.core.store import LogEntry, Store
from workers.turns import TurnLoop

log = logging.getLogger(__name__)

_MISSING_JOB_GRACE_S = 10.0
_WAITED_S = 2.0
"""A turn that took this long waited for Redis (its client retried through an outage)."""
_STOP_GRACE_S = 5.0
"""Seconds a download asked to cancel or pause may leave its record unchanged before RQ stops its job."""


class Watchdog(TurnLoop):
    what = "watchdog pass"

    def __init__(self, store: Store, jobs: JobQueue, settings: Settings, *, interval: float = 1.0,
                 persist: Callable[[], None] | None = None,
                 on_new_server: Callable[[], None] | None = None) -> None:
        super().__init__(name="modeldepot-watchdog", tick=interval)
        self.store = store
        self.persist = persist
        self.on_new_server = on_new_server
        """Called when another Redis server answers than at the last pass (a failover may have lost writes)."""
        self.jobs = jobs
        self.settings = settings
        self._server = ""
        self._steady_since = -math.inf  # a pass run by hand judges at once; the loop's first turn starts the clock

    def take_turn(self) -> bool:
        """One pass per interval across every process that runs a watchdog, whichever gets there first."""
        asked = time.monotonic()
        try:
            took = self.store.take_watchdog_turn(self.tick)
            self._watch_server(waited=time.monotonic() - asked > _WAITED_S)
        except ModelDepotError:
            self._steady_since = time.monotonic()
            raise
        return took

    def _watch_server(self, *, waited: bool) -> None:
        server = self.store.server_id()
        if waited or server != self._server:
            self._steady_since = time.monotonic()
        if self._server and server != self._server:
            log.warning("another Redis server answers now (failover or restart); judging heartbeats again in %.0fs",
                        self.settings.heartbeat_ttl)
            if self.on_new_server is not None:
                self.on_new_server()
        self._server = server

    @property
    def steady(self) -> bool:
        """Redis has answered, the same server, for a heartbeat TTL: every live job had the time to say so."""
        return time.monotonic() - self._steady_since >= self.settings.heartbeat_ttl

    def run_once(self) -> int:
        """One pass over the records in a transient status; returns how many it fixed."""
        lock = self.store.watchdog_lock()
        if not lock.acquire(blocking=False):
            return 0
        try:
            return sum(self._check(name, raw) for name, raw in self.store.read_transient().items())
        finally:
            lock.release()

    def _check(self, name: str, raw: dict[str, object]) -> int:
        if raw.get("status") not in TRANSIENT:
            return 0  # most records: nothing to look at, and no Redis call
        record = ModelRecord.model_validate(raw)
        if record.job_id is None:
            return 0
        age = time.time() - record.updated_at
        if record.status is Status.DOWNLOADING:
            return self._check_running(name, record, record.job_id, age)
        if age <= _MISSING_JOB_GRACE_S:
            return 0
        if record.status is Status.QUEUED:
            return self._check_waiting(name, record.job_id)
        return self._check_removal(name, record.job_id)

    def _check_running(self, name: str, record: ModelRecord, job_id: str, age: float) -> int:
        if age > self.settings.heartbeat_ttl and self.steady and not self.jobs.is_alive(job_id):
            return self._revive(name, job_id)
        if (record.cancel_requested or record.pause_requested) and age > _STOP_GRACE_S:
            # a cancel's first stop command may have been lost; a pause sends none unless its job missed the flag
            self.jobs.stop_running(job_id)
        return 0

    def _check_waiting(self, name: str, job_id: str) -> int:
        """A queued record whose job is gone, or was taken by a worker that died before starting it."""
        if self.jobs.is_waiting(job_id) or self.jobs.is_alive(job_id):
            return 0
        return self._revive(name, job_id)

    def _revive(self, name: str, dead_job: str) -> int:
        new_job = new_job_id("dl")

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            return _after_death(name, owned(current, dead_job), new_job, self.settings.max_attempts)

        change = self.store.update(name, mutate)
        if change is None:
            return 0
        record = change.record
        if record.status is Status.QUEUED:
            self.jobs.enqueue_download(name, new_job)
            return 1
        if record.status is Status.CANCELLED:  # paused and failed downloads keep their files for a resume
            self.jobs.enqueue_discard(record.repo_id, record.commit)
        if self.persist is not None:
            self.persist()
        return 1

    def _check_removal(self, name: str, job_id: str) -> int:
        """A removal whose job vanished, failed, or was taken by a worker that died."""
        if self.jobs.is_waiting(job_id) or self.jobs.is_alive(job_id):
            return 0
        new_job = new_job_id("rm")

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            record = owned(current, job_id)
            if record.status is not Status.REMOVING:
                raise Unchanged  # the removal failed meanwhile
            return record.removing(new_job), LogEntry("watchdog", f"the removal of {name} was lost; trying again",
                                                      level="warning")

        if self.store.update(name, mutate) is None:
            return 0
        self.jobs.enqueue_remove(name, new_job)
        return 1


def _after_death(name: str, current: ModelRecord, new_job: str,
                 max_attempts: int) -> tuple[ModelRecord, LogEntry]:
    """What a download under way becomes when its job died: what a user asked it to stop as, the next attempt,
    or failed (Unchanged if it is no longer under way)."""
    asked = current.stop_asked
    if asked is not None:
        return current.stopped(asked), LogEntry("watchdog", f"{asked.value} download of {name}")
    if current.attempt < max_attempts:
        return current.requeued(new_job, current.attempt + 1), LogEntry(
            "watchdog", f"the worker downloading {name} died; retrying (attempt {current.attempt + 1} of "
                        f"{max_attempts})", level="warning")
    reason = (f"the download worker died {current.attempt} times while downloading; check the workers' "
              "logs and memory, then Retry")
    return current.stopped(Status.FAILED, reason), LogEntry("watchdog", f"download of {name} failed: {reason}",
                                                              level="error")
