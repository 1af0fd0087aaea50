"""RQ job-completion hooks: every ending of a download reaches the record and the snapshot.

A paused or failed download keeps its partial files (the next attempt resumes them); a cancelled one
deletes them.

``on_download_success`` runs in the work-horse before RQ marks the job finished; ``on_download_failure``
runs in the work-horse too (not at all when it is SIGKILLed: the watchdog covers that);
``on_download_stopped`` runs in the parent worker after a stop-job command killed the horse.
Each hook acts only if the record still belongs to its job, so a late or repeated hook changes nothing.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

import redis
from rq.job import Job
from rq.timeouts import JobTimeoutException

from app.core.errors import DownloadError, JobCancelledError, JobPausedError
from app.core.records import ModelRecord, Status, owned
from app.core.store import LogEntry, Tally
from app.core.units import human_bytes
from workers.context import WorkerContext
from workers.heartbeat import Heartbeat
from workers.jobs import Downloaded

log = logging.getLogger(__name__)


def on_download_success(job: Job, connection: redis.Redis, result: Any) -> None:
    done = Downloaded.from_result(result)
    if done is None:
        return  # the record no longer waited for this job
    ctx = WorkerContext.for_connection(connection)
    name = str(job.args[0])
    duration = time.time() - done.started_at

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        record = owned(current, job.id).ready(commit=done.commit, size_bytes=done.size_bytes,
                                              bytes_total=done.bytes_total, files_total=done.files_total)
        return record, LogEntry("worker", _ready_line(name, done, duration))

    tally = Tally({"downloads_succeeded": 1, "bytes_downloaded": done.bytes_needed}, duration_s=duration)
    ctx.update(name, mutate, tally=tally)
    ctx.persist()


def _ready_line(name: str, done: Downloaded, duration: float) -> str:
    if done.previous is None:
        return f"{name} is ready: {human_bytes(done.size_bytes)} at commit {done.commit[:7]} in {duration:.1f}s"
    if done.previous == done.commit:
        return f"{name} is up to date at commit {done.commit[:7]}; nothing to update"
    return (f"updated {name} from {done.previous[:7]} to {done.commit[:7]}: fetched {human_bytes(done.bytes_needed)}, "
            f"freed {human_bytes(done.freed_bytes)} of the old revision, in {duration:.1f}s")


def on_download_failure(job: Job, connection: redis.Redis, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
    stopped = isinstance(exc, JobCancelledError)
    if not stopped and not isinstance(exc, DownloadError):
        log.error("download job %s failed unexpectedly", job.id, exc_info=(exc_type, exc, tb))  # type: ignore[arg-type]
    status = Status.FAILED
    if stopped:
        status = Status.PAUSED if isinstance(exc, JobPausedError) else Status.CANCELLED
    finish(WorkerContext.for_connection(connection), str(job.args[0]), job.id, status,
           None if stopped else describe_failure(exc))


def on_download_stopped(job: Job, connection: redis.Redis) -> None:
    ctx = WorkerContext.for_connection(connection)
    Heartbeat.end(connection, ctx.keys, job.id)  # a removal waiting for the killed horse need not wait out the TTL
    record = ctx.store.get(str(job.args[0]))
    paused = record is not None and record.stop_asked is Status.PAUSED
    finish(ctx, str(job.args[0]), job.id, Status.PAUSED if paused else Status.CANCELLED, None)


def finish(ctx: WorkerContext, name: str, job_id: str, status: Status, reason: str | None) -> bool:
    """Move a download to ``failed``/``cancelled``/``paused`` and persist the snapshot; a cancelled one's
    partial files are deleted. False if the record no longer belongs to the job or is no longer under way."""
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        before = owned(current, job_id)
        record = before.stopped(status, reason)
        line = _ending_line(name, status, reason, fell_back_to=record.commit if before.update_from else None)
        return record, LogEntry("worker", line, level="error" if reason else "info")

    counter = _ENDING_COUNTERS[status]
    change = ctx.update(name, mutate, tally=Tally({counter: 1}) if counter else None)
    if change is None:
        return False
    record, before = change.record, change.before
    if before is not None and before.update_from is not None and record.status is Status.READY:
        ctx.abandon_update(record, before.commit, discard=status is Status.CANCELLED)
    elif status is Status.CANCELLED:
        ctx.discard_partial(record.repo_id, record.commit, keep_for=name)
    ctx.persist()
    return True


_ENDING_COUNTERS = {Status.FAILED: "downloads_failed", Status.CANCELLED: "downloads_cancelled", Status.PAUSED: ""}


def _ending_line(name: str, status: Status, reason: str | None, *, fell_back_to: str | None = None) -> str:
    if fell_back_to is not None and status is not Status.PAUSED:
        why = f"failed: {reason}" if reason else "was cancelled"
        return f"the update of {name} {why}; it stays ready at commit {fell_back_to[:7]}"
    if status is Status.PAUSED:
        return f"paused download of {name}; its partial files are kept for Resume"
    if reason:
        return f"download of {name} failed: {reason}"
    return f"cancelled download of {name}"


def describe_failure(exc: BaseException | None) -> str:
    """The reason a user reads; never a traceback."""
    if isinstance(exc, DownloadError):
        return str(exc)
    if isinstance(exc, JobTimeoutException):
        return "the download took longer than the job timeout (MODELDEPOT_JOB_TIMEOUT); retry or raise it"
    name = type(exc).__name__ if exc is not None else "unknown error"
    return f"internal error in the download worker ({name}); see the worker's log, then Retry"
