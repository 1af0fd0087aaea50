"""One writer per partial file, across hosts: a Redis key per partial, held with a TTL while it is written.

``flock`` (filelock) only serialises processes of one host, and on many network file systems not even
that, so the owner is recorded in Redis (``Keys.partial_claim``) by job id. The claim expires
``ttl`` seconds after its writer stops refreshing it (a dead host), so the next attempt anywhere can take
the partial over and continue it; a live writer refreshes it on every progress tick.
"""

from __future__ import annotations

import logging
import threading

import redis

from app.core.keys import Keys
from app.core.store import redis_errors

log = logging.getLogger(__name__)

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PartialClaims:
    """The partial files one job holds."""

    def __init__(self, connection: redis.Redis, keys: Keys, owner: str, *, ttl: float) -> None:
        self._redis = connection
        self._keys = keys
        self.owner = owner
        self._ttl_ms = max(1000, int(ttl * 1000))
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._refresh = connection.register_script(_REFRESH)
        self._release = connection.register_script(_RELEASE)

    def acquire(self, repo_folder: str, etag: str) -> bool:
        """Take the partial of ``etag`` if no live job holds it (or this job already does).

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        key = self._keys.partial_claim(repo_folder, etag)
        with redis_errors():
            taken = self._redis.set(key, self.owner, nx=True, px=self._ttl_ms)
            if not taken:
                holder = self._redis.get(key)
                taken = holder is not None and _text(holder) == self.owner
        if taken:
            with self._lock:
                self._held.add(key)
        return bool(taken)

    def holder(self, repo_folder: str, etag: str) -> str | None:
        """The job id writing that partial now, if any."""
        with redis_errors():
            value = self._redis.get(self._keys.partial_claim(repo_folder, etag))
        return _text(value) if value is not None else None

    def refresh(self) -> None:
        """Extend every held claim; a Redis hiccup is only logged (the TTL leaves several ticks of slack)."""
        with self._lock:
            held = list(self._held)
        for key in held:
            try:
                self._refresh(keys=[key], args=[self.owner, self._ttl_ms])
            except redis.RedisError as e:
                log.warning("could not refresh the claim %s: %s", key, type(e).__name__)

    def release(self, repo_folder: str, etag: str) -> None:
        key = self._keys.partial_claim(repo_folder, etag)
        with self._lock:
            self._held.discard(key)
        try:
            self._release(keys=[key], args=[self.owner])
        except redis.RedisError as e:  # it expires by itself
            log.warning("could not release the claim %s: %s", key, type(e).__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
