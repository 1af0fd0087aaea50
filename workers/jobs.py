"""The RQ job functions. Each reads its parameters from the model record, so payloads hold only names."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rq import get_current_job
from rq.job import Job

from app.core.errors import DownloadError, JobCancelledError
from app.core.records import ModelRecord, Status, Unchanged, owned
from app.core.store import LogEntry, Tally
from workers import removal
from workers.context import WorkerContext
from workers.download import cache, hub
from workers.download.plan import DownloadPlan
from workers.download.transfer.claims import PartialClaims
from workers.download.transfer.engine import Transfer, TransferOptions
from workers.heartbeat import Heartbeat
from workers.lifecycle import room, updates
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
    previous: str | None = None
    """The commit an update replaced (None for a plain download)."""
    freed_bytes: int = 0
    """Bytes of the replaced revision's files no other revision uses, deleted once the new one was verified."""

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
        return cls(**{f.name: result[f.name] for f in fields(cls) if f.name in result})


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
        previous = record.update_from.commit if record.update_from else None
        plan = _plan(ctx, record, update=previous is not None)
        room.reserve(ctx, name, plan, record_plan=lambda: _record_plan(ctx, name, job.id, plan))
        reporter = ProgressReporter(ctx.store, name, job.id, interval=settings.progress_interval)
        claims = PartialClaims(job.connection, ctx.keys, job.id, ttl=settings.heartbeat_ttl)
        Transfer(plan, cache_dir=ctx.models_dir, claims=claims, options=TransferOptions.from_settings(settings),
                 token=None, endpoint=None).run(reporter, poll_interval=0.25)
        if reporter.cancel_requested:
            raise JobCancelledError(f"download of {name} cancelled")
        ctx.discard_stale_partials(plan.repo_id, keep_for=name)
        freed = 0
        if previous is not None and previous != plan.commit:
            freed = ctx.drop_revision(plan.repo_id, previous, keep_for=name)
        size = cache.size_on_disk(plan.repo_id, plan.commit, ctx.models_dir)
        return Downloaded(plan.commit, size, plan.bytes_total, plan.files_total, plan.bytes_needed,
                          started, previous, freed).to_result()


def _plan(ctx: WorkerContext, record: ModelRecord, *, update: bool) -> DownloadPlan:
    """What to fetch. An update plans the branch's new commit by its id, so ``refs/<branch>`` keeps naming the old
    revision until the transfer has verified every file of the new one (the engine moves it then)."""
    revision = hub.resolve_commit(record.repo_id, record.revision) if update else record.revision
    plan = hub.plan_download(record.repo_id, revision=revision, allow_patterns=record.allow_patterns,
                             ignore_patterns=record.ignore_patterns, cache_dir=ctx.models_dir, token=None,
                             endpoint=None)
    return replace(plan, revision=record.revision) if update else plan


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
    freed = removal.remove(WorkerContext.for_connection(job.connection), name, job.id,
                           stopping_job_id=stopping_job_id)
    return None if freed is None else {"freed_bytes": freed}


def discard_partial_job(repo_id: str, commit: str | None) -> dict[str, Any]:
    """Delete what a cancelled or failed download left behind."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    return {"freed_bytes": ctx.discard_partial(repo_id, commit, keep_for="")}


def check_updates_job(names: list[str] | None = None) -> dict[str, Any]:
    """Ask the Hub whether the branches of ``names`` (None: every model that follows one) moved."""
    job = _current_job()
    ctx = WorkerContext.for_connection(job.connection)
    summary = updates.check_models(ctx, updates.followed(ctx) if names is None else names)
    return {"checked": summary.checked, "updates": summary.updates, "errors": summary.errors}


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
