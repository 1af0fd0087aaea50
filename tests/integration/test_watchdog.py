"""The watchdog on a real Redis: dead jobs are re-queued, and the watchdog itself survives Redis restarts."""

from __future__ import annotations

import time

from app.core.controller import Controller
from app.core.jobqueue import JobQueue
from app.core.records import ModelRecord, Status
from app.core.settings import Settings
from tests.redis_server import RedisServer
from tests.support.waiting import wait_until
from workers.watchdog import Watchdog


def _dead_download(controller: Controller, name: str, attempt: int = 1) -> None:
    record = ModelRecord(name=name, repo_id=name, status=Status.DOWNLOADING, job_id=f"md-dl-dead-{name[-1]}",
                         attempt=attempt)
    controller.store.force(name, record, None)
    raw = controller.redis.hget(controller.keys.models, name)
    stale = ModelRecord.from_json(raw).model_copy(update={"updated_at": time.time() - 60})
    controller.redis.hset(controller.keys.models, name, stale.to_json())


def test_dead_download_is_requeued_then_failed(settings_env: Settings) -> None:
    controller = Controller(settings_env, listen=False)
    dog = Watchdog(controller.store, JobQueue(controller.redis, settings_env), settings_env)
    _dead_download(controller, "org/a")
    assert dog.run_once() == 1
    record = controller.store.get("org/a")
    assert record.status is Status.QUEUED and record.attempt == 2
    assert controller.jobs.is_waiting(record.job_id)
    _dead_download(controller, "org/b", attempt=settings_env.max_attempts)
    dog.run_once()
    failed = controller.store.get("org/b")
    assert failed.status is Status.FAILED and "died" in failed.error


def test_watchdog_thread_survives_a_redis_restart(redis_server: RedisServer, settings_env: Settings) -> None:
    controller = Controller(settings_env, listen=False)
    dog = Watchdog(controller.store, JobQueue(controller.redis, settings_env), settings_env, interval=0.1)
    dog.start()
    try:
        time.sleep(0.3)
        redis_server.restart()
        time.sleep(0.5)
        _dead_download(controller, "org/c")
        wait_until(lambda: controller.store.get("org/c").status is Status.QUEUED, 10, "the watchdog to act")
        assert dog.is_alive()
    finally:
        dog.stop()


def test_records_seeded_from_a_snapshot_are_watched(settings_env: Settings) -> None:
    controller = Controller(settings_env, listen=False)
    controller.redis.flushall()
    seeded = ModelRecord(name="org/s", repo_id="org/s", status=Status.DOWNLOADING, job_id="md-dl-x").to_dict()
    ready = ModelRecord(name="org/r", repo_id="org/r", status=Status.READY).to_dict()
    assert controller.store.seed(5, {"org/s": seeded, "org/r": ready}, [])
    assert set(controller.store.read_transient()) == {"org/s"}


def test_after_a_restart_no_download_is_called_dead_for_one_heartbeat_ttl(redis_server: RedisServer,
                                                                          settings_env: Settings) -> None:
    """Another server answering (a failover, a restart) may hold heartbeats not yet refreshed: the watchdog waits one
    TTL before it judges them, then acts as usual."""
    controller = Controller(settings_env, listen=False)
    restores: list[float] = []
    dog = Watchdog(controller.store, JobQueue(controller.redis, settings_env), settings_env, interval=0.1,
                   on_new_server=lambda: restores.append(time.monotonic()))
    dog.start()
    try:
        wait_until(lambda: not dog.steady, 10, "the watchdog's first turn (it starts judging one TTL later)")
        wait_until(lambda: dog.steady, 10, "the watchdog to trust the first server")
        redis_server.restart()  # another run id: what a promoted replica looks like
        _dead_download(controller, "org/d")
        wait_until(lambda: restores, 10, "the watchdog to see another server")
        seen_at = restores[0]
        revived = wait_until(lambda: controller.store.get("org/d").status is Status.QUEUED and time.monotonic(),
                             settings_env.heartbeat_ttl + 10, "the watchdog to act after the grace")
        assert revived - seen_at >= settings_env.heartbeat_ttl
    finally:
        dog.stop()
