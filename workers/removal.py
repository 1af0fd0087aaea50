"""Removing a model: the one path a user's removal, a prune and quota eviction all take.

The record is ``removing`` and names the removing job. A download still running is given time to stop; an
eviction is called off (the model goes back to ``ready``) if the model was used after eviction picked it;
then the files go (blobs another record still links stay) and the record leaves the list with a log line.
"""

from __future__ import annotations

import logging
import time

from app.core.eviction import EVICTOR
from app.core.records import ModelRecord, Status, owned
from app.core.store import LogEntry, Tally
from app.core.units import human_age, human_bytes
from workers.context import WorkerContext
from workers.download import cache
from workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)


def remove(ctx: WorkerContext, name: str, job_id: str, *, stopping_job_id: str | None = None) -> int | None:
    """Delete the files of record ``name`` and drop it from the list; return the bytes freed, or None when the
    record no longer waits for job ``job_id`` or its eviction was called off.

    Raises:
        Exception: the files could not be deleted (the record is then ``failed`` with the reason).
    """
    record = ctx.store.get(name)
    if record is None or record.status is not Status.REMOVING or not record.owned_by(job_id):
        log.info("%s is not waiting for removal job %s; nothing to do", name, job_id)
        return None
    settings = ctx.settings
    try:
        with Heartbeat(ctx.store.redis, ctx.keys, job_id, interval=settings.heartbeat_interval,
                       ttl=settings.heartbeat_ttl):
            _wait_for_download_to_stop(ctx, stopping_job_id)
            if record.evicted_at is not None and _call_off_if_used(ctx, record, job_id):
                return None
            freed = _delete_files(ctx, record)
    except Exception as e:
        _fail_removal(ctx, name, job_id, e)
        raise
    _forget(ctx, record, job_id, freed)
    return freed


def _delete_files(ctx: WorkerContext, record: ModelRecord) -> int:
    """The record's revision, and the one an update under way was replacing."""
    freed = ctx.discard_partial(record.repo_id, record.commit, keep_for=record.name)
    previous = record.update_from
    if previous is not None and previous.commit != record.commit:
        freed += ctx.discard_partial(record.repo_id, previous.commit, keep_for=record.name)
    return freed


def _call_off_if_used(ctx: WorkerContext, record: ModelRecord, job_id: str) -> bool:
    """An eviction whose model was read after eviction picked it (a newer access time than it saw, or one within
    ``MODELDEPOT_EVICT_MIN_IDLE_S``) is called off: the model is in use, so not one file of it is deleted."""
    if record.commit is None:
        return False
    used_at = cache.last_access(record.repo_id, record.commit, ctx.models_dir)
    if used_at is None:
        return False
    recent = time.time() - used_at < ctx.settings.evict_min_idle_s
    if used_at <= record.idle_since + 1.0 and not recent:
        return False

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        back = owned(current, job_id).eviction_called_off(used_at)
        return back, LogEntry(EVICTOR, f"kept {record.name}: it was used {human_age(time.time() - used_at)} ago, "
                                       "after eviction picked it")

    changed = ctx.update(record.name, mutate) is not None
    if changed:
        ctx.persist()
    return changed


def _forget(ctx: WorkerContext, record: ModelRecord, job_id: str, freed: int) -> None:
    evicted = record.evicted_at is not None
    who = EVICTOR if evicted else "worker"
    verb = "evicted" if evicted else "removed"

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        owned(current, job_id)
        return None, LogEntry(who, f"{verb} {record.name}, freed {human_bytes(freed)}")

    tally = Tally({"evictions": 1, "evicted_bytes": freed}) if evicted else None
    ctx.update(record.name, mutate, tally=tally)
    ctx.persist()


def _wait_for_download_to_stop(ctx: WorkerContext, job_id: str | None, timeout: float = 30.0) -> None:
    """Give a cancelled download's work-horse time to die before its files are deleted."""
    if job_id is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and ctx.jobs.is_alive(job_id):
        time.sleep(0.2)


def _fail_removal(ctx: WorkerContext, name: str, job_id: str, error: Exception) -> None:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        record = owned(current, job_id).removal_failed(f"remove failed: {error}. Try Remove again.")
        return record, LogEntry("worker", f"could not remove {name}: {error}", level="error")

    ctx.update(name, mutate)
    ctx.persist()
