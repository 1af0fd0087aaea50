"""The per-worker bandwidth cap (``MODELDEPOT_MAX_BANDWIDTH``): a token bucket every file thread draws from."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Lets at most ``rate`` bytes per second through, shared by the threads of one worker.

    ``take(n)`` blocks until ``n`` bytes may pass. The bucket holds at most ``burst_s`` seconds of bytes, so
    a pause (a retry, a slow disk) does not turn into a burst over the cap afterwards.
    """

    def __init__(self, rate: int, *, burst_s: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._capacity = rate * burst_s
        self._tokens = 0.0  # no burst at the start: the cap holds from the first second
        self._clock = clock
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, count: int, *, stop: threading.Event | None = None) -> None:
        """Wait until ``count`` bytes may pass (returns early once ``stop`` is set)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= count  # may go negative: the debt is the wait
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)
