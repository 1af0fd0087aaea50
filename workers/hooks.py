"""RQ job-completion hooks: every ending of a download reaches the record and the snapshot.

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

from app.errors import DownloadError, JobCancelledError
from app.records import ModelRecord, Status
from app.store import LogEntry, Tally, Unchanged
from app.units import human_bytes
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
            "eta_s": None, "error": None, "finished_at": time.time(), "cancel_requested": False})
        return record, LogEntry("worker", f"{name} is ready: {human_bytes(result['size_bytes'])} at "
                                          f"commit {result['commit'][:7]} in {duration:.1f}s")

    tally = Tally({"downloads_succeeded": 1, "bytes_downloaded": int(result.get("bytes_needed", 0))},
                  duration_s=duration)
    ctx.update(name, mutate, tally=tally)
    ctx.persist()


def on_download_failure(job: Job, connection: redis.Redis, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
    cancelled = isinstance(exc, JobCancelledError)
    reason = describe_failure(exc)
    if not cancelled and not isinstance(exc, DownloadError):
        log.error("download job %s failed unexpectedly", job.id, exc_info=(exc_type, exc, tb))  # type: ignore[arg-type]
    finish(WorkerContext.for_connection(connection), str(job.args[0]), job.id,
           Status.CANCELLED if cancelled else Status.FAILED, None if cancelled else reason)


def on_download_stopped(job: Job, connection: redis.Redis) -> None:
    ctx = WorkerContext.for_connection(connection)
    # The killed horse never ran its heartbeat's cleanup; a removal waiting for it need not wait out the TTL.
    connection.delete(ctx.keys.heartbeat(job.id))
    finish(ctx, str(job.args[0]), job.id, Status.CANCELLED, None)


def finish(ctx: WorkerContext, name: str, job_id: str, status: Status, reason: str | None) -> bool:
    """Move a download to ``failed``/``cancelled``, delete its partial files and persist the snapshot."""
    ended: list[ModelRecord] = []

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.job_id != job_id:
            raise Unchanged
        if current.status not in (Status.QUEUED, Status.DOWNLOADING):
            raise Unchanged
        record = current.model_copy(update={"status": status, "error": reason, "finished_at": time.time(),
                                             "speed_bps": 0.0, "eta_s": None})
        ended.append(record)
        what = f"download of {name} failed: {reason}" if reason else f"cancelled download of {name}"
        return record, LogEntry("worker", what, level="error" if reason else "info")

    counter = "downloads_failed" if status is Status.FAILED else "downloads_cancelled"
    if ctx.update(name, mutate, tally=Tally({counter: 1})) is None:
        return False
    record = ended[0]
    ctx.discard_partial(record.repo_id, record.commit, keep_for=name)
    ctx.persist()
    return True


def describe_failure(exc: BaseException | None) -> str:
    """The reason a user reads; never a traceback."""
    if isinstance(exc, DownloadError):
        return str(exc)
    if isinstance(exc, JobTimeoutException):
        return "the download took longer than the job timeout (MODELDEPOT_JOB_TIMEOUT); retry or raise it"
    name = type(exc).__name__ if exc is not None else "unknown error"
    return f"internal error in the download worker ({name}); see the worker's log, then Retry"
