"""The RQ job functions. Each reads its parameters from the model record, so payloads hold only names."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from rq import get_current_job
from rq.job import Job

from app.core.errors import DownloadError, JobCancelledError
from app.core.records import ModelRecord, Status, Unchanged, owned
from app.core.store import LogEntry, Tally
from app.core.units import human_bytes
from workers.context import WorkerContext
from workers.download import cache, hub
from workers.download.plan import DownloadPlan
from workers.download.transfer.claims import PartialClaims
from workers.download.transfer.engine import Transfer, TransferOptions
from workers.heartbeat import Heartbeat
from workers.progress import ProgressReporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Downloaded:
    """What a finished download hands its success hook; RQ keeps it as the job's (JSON) result."""

    commit: str
    size_bytes: int
    bytes_total: int
    files_total: int
    bytes_needed: int
    """Bytes fetched from the Hub by this attempt (the rest were on the volume already)."""
    started_at: float

    def to_result(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_result(cls, result: Any) -> Downloaded | None:
        """The download a job's result describes; None for a job that had nothing to do.

        Raises:
            TypeError, KeyError: ``result`` is not what :meth:`to_result` returned.
        """
        if result is None:
            return None
        if not isinstance(result, dict):
            raise TypeError(f"a download job's result is a JSON object, not {type(result).__name__}")
        return cls(**{f.name: result[f.name] for f in fields(cls)})


def _current_job() -> Job:
    job = get_current_job()
    if job is None:
        raise RuntimeError("not running inside an RQ job")
    return job


def download_job(name: str) -> dict[str, Any] | None:
    """Download the model record ``name`` (queued by the controller) and verify it.

    Returns :class:`Downloaded` as JSON, or None when the record no longer waits for this job.
    """
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    settings = ctx.settings
    with Heartbeat(job.connection, ctx.keys, job.id, interval=settings.heartbeat_interval,
                   ttl=settings.heartbeat_ttl):
        record = _claim(ctx, name, job.id)
        if record is None:
            log.info("%s no longer waits for job %s; nothing to do", name, job.id)
            return None
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
        return Downloaded(plan.commit, size, plan.bytes_total, plan.files_total, plan.bytes_needed,
                          started).to_result()


def _claim(ctx: WorkerContext, name: str, job_id: str) -> ModelRecord | None:
    """queued -> downloading, only if the record still waits for this job."""
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        record = owned(current, job_id).claim()
        attempt = f" (attempt {record.attempt})" if record.attempt > 1 else ""
        return record, LogEntry("worker", f"started downloading {name}{attempt}")

    change = ctx.update(name, mutate, tally=Tally({"downloads_started": 1}))
    return change.record if change else None


def _record_plan(ctx: WorkerContext, name: str, job_id: str, plan: DownloadPlan) -> None:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        return owned(current, job_id).planned(commit=plan.commit, bytes_total=plan.bytes_total,
                                              files_total=plan.files_total, bytes_needed=plan.bytes_needed), None

    ctx.update(name, mutate, kind="progress")


def remove_job(name: str, stopping_job_id: str | None = None) -> dict[str, Any] | None:
    """Delete the files of record ``name`` and drop it from the list; None if it no longer waits for this job."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    record = ctx.store.get(name)
    if record is None or record.status is not Status.REMOVING or not record.owned_by(job.id):
        log.info("%s is not waiting for removal job %s; nothing to do", name, job.id)
        return None
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
        owned(current, job.id)
        return None, LogEntry("worker", f"removed {name}, freed {human_bytes(freed)}")

    ctx.update(name, mutate)
    ctx.persist()
    return {"freed_bytes": freed}


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


def discard_partial_job(repo_id: str, commit: str | None) -> dict[str, Any]:
    """Delete what a cancelled or failed download left behind."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    return {"freed_bytes": ctx.discard_partial(repo_id, commit, keep_for="")}


def verify_job(name: str) -> dict[str, Any] | None:
    """Re-check a ready model against the Hub's checksums; a mismatch marks it failed. None if it is not ready."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    record = ctx.store.get(name)
    if record is None or record.status is not Status.READY or record.commit is None:
        log.info("%s is not ready; nothing to verify", name)
        return None
    try:
        hub.verify(record.repo_id, record.commit, cache_dir=ctx.models_dir, token=None, endpoint=None)
    except DownloadError as e:
        _mark_corrupt(ctx, name, record.commit, str(e))
        return {"ok": False, "reason": str(e)}
    ctx.store.append_log(LogEntry("worker", f"verified {name}: every file matches the Hub's checksums"))
    return {"ok": True}


def _mark_corrupt(ctx: WorkerContext, name: str, commit: str, reason: str) -> None:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None:
            raise Unchanged
        return current.broken(commit, reason), LogEntry("worker", f"verification of {name} failed: {reason}",
                                                        level="error")

    ctx.update(name, mutate)
    ctx.persist()
