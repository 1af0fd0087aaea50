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
from app.core.records import ModelRecord, Status
from app.core.store import LogEntry, Tally, Unchanged
from app.core.units import human_bytes
from workers.context import WorkerContext
from workers.jobs import SKIPPED

log = logging.getLogger(__name__)


def on_download_success(job: Job, connection: redis.Redis, result: Any) -> None:
    if not isinstance(result, dict) or SKIPPED in result:
        return
    ctx = WorkerContext.for_connection(connection)
    name = str(job.args[0])
    duration = time.time() - float(result.get("started_at", time.time()))

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.job_id != job.id or current.status is not Status.DOWNLOADING:
            raise Unchanged
        record = current.model_copy(update={
            "status": Status.READY, "commit": result["commit"], "size_bytes": result["size_bytes"],
            "bytes_done": result["bytes_total"], "bytes_total": result["bytes_total"],
            "files_done": result["files_total"], "files_total": result["files_total"], "speed_bps": 0.0,
            "eta_s": None, "error": None, "finished_at": time.time(), "cancel_requested": False,
            "pause_requested": False, "retry": None})
        return record, LogEntry("worker", f"{name} is ready: {human_bytes(result['size_bytes'])} at "
                                          f"commit {result['commit'][:7]} in {duration:.1f}s")

    tally = Tally({"downloads_succeeded": 1, "bytes_downloaded": int(result.get("bytes_needed", 0))},
                  duration_s=duration)
    ctx.update(name, mutate, tally=tally)
    ctx.persist()


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
    # The killed horse never ran its heartbeat's cleanup; a removal waiting for it need not wait out the TTL.
    connection.delete(ctx.keys.heartbeat(job.id))
    record = ctx.store.get(str(job.args[0]))
    paused = record is not None and record.pause_requested and not record.cancel_requested
    finish(ctx, str(job.args[0]), job.id, Status.PAUSED if paused else Status.CANCELLED, None)


def finish(ctx: WorkerContext, name: str, job_id: str, status: Status, reason: str | None) -> bool:
    """Move a download to ``failed``/``cancelled``/``paused`` and persist the snapshot; a cancelled one's
    partial files are deleted."""
    ended: list[ModelRecord] = []

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.job_id != job_id:
            raise Unchanged
        if current.status not in (Status.QUEUED, Status.DOWNLOADING):
            raise Unchanged
        record = current.model_copy(update={"status": status, "error": reason, "finished_at": time.time(),
                                             "speed_bps": 0.0, "eta_s": None, "retry": None,
                                             "pause_requested": False})
        ended.append(record)
        return record, LogEntry("worker", _ending_line(name, status, reason), level="error" if reason else "info")

    counter = _ENDING_COUNTERS[status]
    if ctx.update(name, mutate, tally=Tally({counter: 1}) if counter else None) is None:
        return False
    record = ended[0]
    if status is Status.CANCELLED:
        ctx.discard_partial(record.repo_id, record.commit, keep_for=name)
    ctx.persist()
    return True


_ENDING_COUNTERS = {Status.FAILED: "downloads_failed", Status.CANCELLED: "downloads_cancelled", Status.PAUSED: ""}


def _ending_line(name: str, status: Status, reason: str | None) -> str:
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
