"""Significant writes wait for a replica, so what a primary acknowledged survives its failover.

Replication is asynchronous: a write the primary answered can be gone if the primary dies before a replica
has it and the replica is promoted. ``WAIT 1 <ms>`` after the write, on the same connection, returns once a
replica holds it. It is skipped where it cannot help (no replica) and for progress ticks, which may be lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.client import Pipeline

log = logging.getLogger(__name__)
T = TypeVar("T")

RECHECK_S = 5.0
"""How long the count of replicas is trusted; a failover or a replica joining shows within this."""


class ReplicaWait:
    """Runs a write and, when the primary has replicas, waits until one of them holds it."""

    def __init__(self, connection: redis.Redis, *, wait_ms: int) -> None:
        self.redis = connection
        self.wait_ms = wait_ms
        self._replicas = 0
        self._checked_at = -RECHECK_S
        self._lock = threading.Lock()

    def replicas(self) -> int:
        """The primary's connected replicas, asked at most every :data:`RECHECK_S`."""
        with self._lock:
            if time.monotonic() - self._checked_at < RECHECK_S:
                return self._replicas
        try:
            count = int(self.redis.info("replication").get("connected_slaves", 0))
        except redis.ResponseError:  # a server (or fake) without INFO replication: nothing to wait for
            count = 0
        with self._lock:
            self._replicas, self._checked_at = count, time.monotonic()
        return count

    def write(self, command: Callable[[Any], T], *, significant: bool = True) -> T:
        """``command(client)``: on the client itself when there is nothing to wait for (one round trip), else in
        a pipeline followed by ``WAIT`` on the same connection."""
        if not self._waits(significant):
            return command(self.redis)
        reply: T = self.pipeline(command, significant=significant)[0]
        return reply

    def pipeline(self, *commands: Callable[[Pipeline], object], significant: bool = True) -> list[Any]:
        """Send every command to one pipeline on one connection, then ``WAIT`` when ``significant`` and there is a
        replica; their replies.

        Raises:
            redis.RedisError: as the commands raise it (the caller converts it).
        """
        pipe = self.redis.pipeline(transaction=False)
        for command in commands:
            command(pipe)
        waiting = self._waits(significant)
        if waiting:
            pipe.wait(1, self.wait_ms)
        replies: list[Any] = pipe.execute()
        if waiting and int(replies.pop()) < 1:
            log.warning("no replica confirmed a write within %d ms; it stands on the primary alone until one "
                        "syncs (a failover now could lose it; controller_state.json and the disk would restore "
                        "it)", self.wait_ms)
        return replies

    def _waits(self, significant: bool) -> bool:
        return significant and self.wait_ms > 0 and self.replicas() > 0
