"""Start an RQ worker on Model Depot's queues: JSON serializer, allowlisted jobs, watchdog, adoption."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from app.core.connection import connect_checked
from app.core.errors import StateUnavailableError
from app.core.seeding import restore_from_snapshot
from app.core.settings import get_settings
from workers import hooks, jobs
from workers.context import WorkerContext
from workers.download import hub
from workers.lifecycle.upkeep import Upkeep
from workers.reconcile import reconcile
from workers.safety import SafeJob
from workers.watchdog import Watchdog

log = logging.getLogger(__name__)

QUEUE_KINDS = ("maintenance", "downloads")
# Imported here so every forked work-horse inherits them instead of importing them per job.
PRELOADED = (jobs.download_job, hooks.on_download_success)


def build_worker(kinds: Sequence[str] = QUEUE_KINDS, *, name: str | None = None) -> Worker:
    """An RQ worker listening on the given Model Depot queues (maintenance first: removals are quick)."""
    settings = get_settings()
    connection = connect_checked(settings)  # a Redis that is not there is logged at once, then waited for
    ctx = WorkerContext.for_connection(connection)
    names = {"maintenance": ctx.keys.remove_queue, "downloads": ctx.keys.download_queue}
    queues = [Queue(names[k], connection=connection, serializer=JSONSerializer) for k in kinds]
    return Worker(queues, connection=connection, serializer=JSONSerializer, job_class=SafeJob, name=name,
                  job_monitoring_interval=5)


def run_worker(kinds: Sequence[str] = QUEUE_KINDS, *, burst: bool = False, name: str | None = None,
               watchdog: bool = True) -> None:
    """Run a worker until stopped; when Redis goes away, wait for it and start over (RQ's loop would exit)."""
    hub.configure_http_client(timeout=60)
    backoff = 0.5
    while True:
        try:
            _run_once(kinds, burst=burst, name=name, watchdog=watchdog)
            return
        except (redis.ConnectionError, redis.TimeoutError, StateUnavailableError) as e:
            log.warning("lost Redis (%s: %s); starting the worker again in %.1fs", type(e).__name__, e, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def _asked_to_stop(worker: Worker) -> bool:
    """RQ's loop also ends, returning normally, on any error it does not expect (a Redis reply during a failover):
    only a stop asked for by a signal or RQ's shutdown command ends the worker. RQ keeps the date of that request
    private; a missing attribute (another RQ) counts as asked, so a worker never outlives its stop."""
    return getattr(worker, "_shutdown_requested_date", True) is not None


def _restore(ctx: WorkerContext) -> None:
    restore_from_snapshot(ctx.store, ctx.state_file)


def _run_once(kinds: Sequence[str], *, burst: bool, name: str | None, watchdog: bool) -> None:
    """Adopt models on disk, then work the queues while a watchdog looks for dead downloads and the upkeep
    thread reads last use and checks for updates."""
    worker = build_worker(kinds, name=name)
    ctx = WorkerContext.for_connection(worker.connection)
    restore_from_snapshot(ctx.store, ctx.state_file)
    log.info("reconciled the models dir: %s", reconcile(ctx))
    dog = Watchdog(ctx.store, ctx.jobs, ctx.settings, persist=ctx.persist,
                   on_new_server=lambda: _restore(ctx))
    upkeep = Upkeep(ctx)
    if watchdog:
        dog.start()
        upkeep.start()
    try:
        worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
        if not burst and not _asked_to_stop(worker):
            raise StateUnavailableError("the RQ loop quit on an error it logged (see above)")
    finally:
        dog.stop()
        upkeep.stop()
