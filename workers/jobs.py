"""The RQ job functions. Each reads its parameters from the model record, so payloads hold only names."""

from __future__ import annotations

import logging
import time
from typing import Any

from rq import get_current_job
from rq.job import Job

from app.core.errors import DownloadError, JobCancelledError
from app.core.records import ModelRecord, Status
from app.core.store import LogEntry, Tally, Unchanged
from app.core.units import human_bytes
from workers.context import WorkerContext
from workers.download import cache, hub
from workers.download.plan import DownloadPlan
from workers.download.transfer.claims import PartialClaims
from workers.download.transfer.engine import Transfer, TransferOptions
from workers.heartbeat import Heartbeat
from workers.progress import ProgressReporter

log = logging.getLogger(__name__)

SKIPPED = "skipped"


def _current_job() -> Job:
    job = get_current_job()
    if job is None:
        raise RuntimeError("not running inside an RQ job")
    return job


def download_job(name: str) -> dict[str, Any]:
    """Download the model record ``name`` (queued by the controller) and verify it."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    settings = ctx.settings
    with Heartbeat(job.connection, ctx.keys, job.id, interval=settings.heartbeat_interval,
                   ttl=settings.heartbeat_ttl):
        record = _claim(ctx, name, job.id)
        if record is None:
            return {SKIPPED: f"{name} no longer waits for job {job.id}"}
        started = time.time()
        plan = hub.plan_download(record.repo_id, revision=record.revision,
                                 allow_patterns=record.allow_patterns, ignore_patterns=record.ignore_patterns,
                                 cache_dir=ctx.models_dir, token=None, endpoint=None)
        _record_plan(ctx, name, job.id, plan)
        hub.check_free_space(plan, ctx.models_dir)
        reporter = ProgressReporter(ctx.store, name, job.id, interval=settings.progress_interval)
        claims = PartialClaims(job.connection, ctx.keys, job.id, ttl=settings.heartbeat_ttl)
        Transfer(plan, cache_dir=ctx.models_dir, claims=claims, options=TransferOptions.from_settings(settings),
                 token=None, endpoint=None).run(reporter, poll_interval=0.25)
        if reporter.cancel_requested:
            raise JobCancelledError(f"download of {name} cancelled")
        ctx.discard_stale_partials(plan.repo_id, keep_for=name)
        size = cache.size_on_disk(plan.repo_id, plan.commit, ctx.models_dir)
        return {"commit": plan.commit, "size_bytes": size, "bytes_total": plan.bytes_total,
                "files_total": plan.files_total, "bytes_needed": plan.bytes_needed, "started_at": started}


def _claim(ctx: WorkerContext, name: str, job_id: str) -> ModelRecord | None:
    """queued -> downloading, only if the record still waits for this job."""
    claimed: list[ModelRecord] = []

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.job_id != job_id:
            raise Unchanged
        if current.status not in (Status.QUEUED, Status.DOWNLOADING) or current.cancel_requested \
                or current.pause_requested:
            raise Unchanged
        record = current.model_copy(update={"status": Status.DOWNLOADING, "error": None})
        claimed.append(record)
        attempt = f" (attempt {current.attempt})" if current.attempt > 1 else ""
        return record, LogEntry("worker", f"started downloading {name}{attempt}")

    ctx.update(name, mutate, tally=Tally({"downloads_started": 1}))
    return claimed[0] if claimed else None


def _record_plan(ctx: WorkerContext, name: str, job_id: str, plan: DownloadPlan) -> None:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.job_id != job_id or current.status is not Status.DOWNLOADING:
            raise Unchanged
        return current.model_copy(update={
            "commit": plan.commit, "bytes_total": plan.bytes_total, "files_total": plan.files_total,
            "bytes_done": plan.bytes_total - plan.bytes_needed, "retry": None}), None

    ctx.update(name, mutate, kind="progress")


def remove_job(name: str, stopping_job_id: str | None = None) -> dict[str, Any]:
    """Delete the files of record ``name`` and drop it from the list."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    record = ctx.store.get(name)
    if record is None or record.status is not Status.REMOVING or record.job_id != job.id:
        return {SKIPPED: f"{name} is not waiting for removal job {job.id}"}
    settings = ctx.settings
    try:
        with Heartbeat(job.connection, ctx.keys, job.id, interval=settings.heartbeat_interval,
                       ttl=settings.heartbeat_ttl):
            _wait_for_download_to_stop(ctx, stopping_job_id)
            freed = ctx.discard_partial(record.repo_id, record.commit, keep_for=name)
    except Exception as e:
        _fail_removal(ctx, name, job.id, e)
        raise

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.job_id != job.id:
            raise Unchanged
        return None, LogEntry("worker", f"removed {name}, freed {human_bytes(freed)}")

    ctx.update(name, mutate)
    ctx.persist()
    return {"freed_bytes": freed}


def _wait_for_download_to_stop(ctx: WorkerContext, job_id: str | None, timeout: float = 30.0) -> None:
    """Give a cancelled download's work-horse time to die before its files are deleted."""
    if job_id is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and ctx.store.redis.exists(ctx.keys.heartbeat(job_id)):
        time.sleep(0.2)


def _fail_removal(ctx: WorkerContext, name: str, job_id: str, error: Exception) -> None:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.job_id != job_id:
            raise Unchanged
        reason = f"remove failed: {error}. Try Remove again."
        return current.model_copy(update={"status": Status.FAILED, "error": reason}), LogEntry(
            "worker", f"could not remove {name}: {error}", level="error")

    ctx.update(name, mutate)
    ctx.persist()


def discard_partial_job(repo_id: str, commit: str | None) -> dict[str, Any]:
    """Delete what a cancelled or failed download left behind."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    return {"freed_bytes": ctx.discard_partial(repo_id, commit, keep_for="")}


def verify_job(name: str) -> dict[str, Any]:
    """Re-check a ready model against the Hub's checksums; a mismatch marks it failed."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    record = ctx.store.get(name)
    if record is None or record.status is not Status.READY or record.commit is None:
        return {SKIPPED: f"{name} is not ready"}
    try:
        hub.verify(record.repo_id, record.commit, cache_dir=ctx.models_dir, token=None, endpoint=None)
    except DownloadError as e:
        _mark_corrupt(ctx, name, record.commit, str(e))
        return {"ok": False, "reason": str(e)}
    ctx.store.append_log(LogEntry("worker", f"verified {name}: every file matches the Hub's checksums"))
    return {"ok": True}


def _mark_corrupt(ctx: WorkerContext, name: str, commit: str, reason: str) -> None:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.status is not Status.READY or current.commit != commit:
            raise Unchanged
        return current.model_copy(update={"status": Status.FAILED, "error": reason}), LogEntry(
            "worker", f"verification of {name} failed: {reason}", level="error")

    ctx.update(name, mutate)
    ctx.persist()
