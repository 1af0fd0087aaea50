"""The work-horse's heartbeat: a Redis key with a TTL, refreshed by a thread while the job runs.

RQ notices a dead work-horse only after ~90 s; the watchdog notices a missing heartbeat within
``heartbeat_ttl`` seconds (``JobQueue.is_alive`` is the one reader of the key).
"""

from __future__ import annotations

import contextlib
import logging
import threading

import redis

from app.core.keys import Keys

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    def __init__(self, connection: redis.Redis, keys: Keys, job_id: str, *, interval: float, ttl: float) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.connection = connection
        self.key = keys.heartbeat(job_id)
        self.interval = interval
        self.ttl_ms = int(ttl * 1000)
        self._stop_event = threading.Event()

    def beat(self) -> None:
        self.connection.set(self.key, "1", px=self.ttl_ms)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.beat()
            except redis.RedisError as e:
                log.warning("heartbeat failed: %s", type(e).__name__)

    def __enter__(self) -> Heartbeat:
        self.beat()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=2)
        with contextlib.suppress(redis.RedisError):
            self.connection.delete(self.key)

    @staticmethod
    def end(connection: redis.Redis, keys: Keys, job_id: str) -> None:
        """Drop the heartbeat of a work-horse that was killed before it could (nobody need wait out its TTL)."""
        connection.delete(keys.heartbeat(job_id))
