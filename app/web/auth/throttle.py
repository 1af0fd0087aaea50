"""The sign-in throttle: after ``login_max_failures`` wrong passwords for one user name, sign-in for that name
pauses until ``login_pause_s`` seconds have passed since the last wrong one (counted in Redis under
``Keys.login_failures(name)``, so on every worker)."""

from __future__ import annotations

import redis

from app.core.errors import TooManySignInsError
from app.core.keys import Keys
from app.core.store import redis_errors


class SignInThrottle:
    """Counts wrong passwords per user name in Redis, so guessing is paused on every UI worker at once.

    The pause is per name, not per client address: a whole office behind one NAT shares an address.
    """

    def __init__(self, connection: redis.Redis, keys: Keys, *, max_failures: int, pause_s: int) -> None:
        self.redis = connection
        self.keys = keys
        self.max_failures = max_failures
        self.pause_s = pause_s

    def check(self, name: str) -> None:
        """Raises: TooManySignInsError: the name had too many wrong passwords lately."""
        key = self.keys.login_failures(name)
        with redis_errors():
            failures = int(self.redis.get(key) or 0)
            wait = self.redis.ttl(key) if failures >= self.max_failures else 0
        if failures >= self.max_failures:
            minutes = max(1, -(-max(wait, 1) // 60))
            raise TooManySignInsError(f"Too many wrong passwords for {name[:64]!r}. Try again in {minutes} minute"
                                      f"{'s' if minutes > 1 else ''}, or ask an admin to check the users file.")

    def failed(self, name: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(self.keys.login_failures(name))
        pipe.expire(self.keys.login_failures(name), self.pause_s)
        with redis_errors():
            pipe.execute()

    def succeeded(self, name: str) -> None:
        with redis_errors():
            self.redis.delete(self.keys.login_failures(name))
