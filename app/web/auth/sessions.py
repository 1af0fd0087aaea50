"""Login sessions in Redis under ``Keys.session(token)`` (a hash of the token), shared by every UI worker.

The value is the user and role as JSON with a TTL of ``session_ttl``, so a login works on every worker and
survives restarts; the browser keeps the token in the :data:`COOKIE_NAME` cookie.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time

import redis

from app.core.errors import StateUnavailableError
from app.core.keys import Keys
from app.core.store import redis_errors
from app.web.auth.roles import Role, User

log = logging.getLogger(__name__)

COOKIE_NAME = "modeldepot_session"
# Resolved sessions are remembered this long in each process, so the 0.5 s timer of every open page
# does not cost a Redis round trip; a logout reaches other workers within this delay.
_SESSION_CACHE_S = 5.0
_SESSION_CACHE_MAX = 10_000


class SessionStore:
    """Login sessions in Redis, shared by every UI worker; a short in-process cache spares Redis per tick."""

    def __init__(self, connection: redis.Redis, keys: Keys, *, ttl: int) -> None:
        self.redis = connection
        self.keys = keys
        self.ttl = ttl
        self._cache: dict[str, tuple[float, User | None]] = {}
        self._lock = threading.Lock()

    def create(self, user: User) -> str:
        """A new session token for ``user``.

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        token = secrets.token_urlsafe(32)
        value = json.dumps({"name": user.name, "role": user.role.value, "created": time.time()})
        with redis_errors():
            self.redis.set(self.keys.session(token), value, ex=self.ttl)
        return token

    def get(self, token: str) -> User | None:
        """The user of a live session, or None.

        Raises:
            StateUnavailableError: Redis is unreachable and the session is not cached.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
        if hit is not None and now - hit[0] < _SESSION_CACHE_S:
            return hit[1]
        try:
            with redis_errors():
                raw = self.redis.get(self.keys.session(token))
        except StateUnavailableError:
            if hit is None:
                raise
            return hit[1]  # Redis is away: keep signed-in pages working on what we last knew
        user = _user_from_json(raw)
        with self._lock:
            if len(self._cache) >= _SESSION_CACHE_MAX:
                self._cache.clear()
            self._cache[token] = (now, user)
        return user

    def peek(self, token: str) -> tuple[bool, User | None]:
        """``(True, user)`` when the session is known from the last few seconds, ``(False, None)`` if Redis
        must be asked (no I/O here, so async code can call it)."""
        hit = self._cache.get(token)
        if hit is not None and time.monotonic() - hit[0] < _SESSION_CACHE_S:
            return True, hit[1]
        return False, None

    def delete(self, token: str) -> None:
        """End a session (other workers forget it within a few seconds)."""
        with self._lock:
            self._cache.pop(token, None)
        with redis_errors():
            self.redis.delete(self.keys.session(token))


def _user_from_json(raw: bytes | str | None) -> User | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return User(str(data["name"]), Role(data["role"]))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed session record")
        return None
