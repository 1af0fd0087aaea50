"""A thread every worker runs whose passes the cluster takes in turns: each tick, the first process to take the
turn (a Redis key with the tick as its TTL) makes the pass, so the cluster makes one pass per tick whatever the
number of workers. The watchdog and the upkeep thread are two."""

from __future__ import annotations

import logging
import threading

from app.core.errors import ModelDepotError

log = logging.getLogger(__name__)


class TurnLoop(threading.Thread):
    what = "pass"
    """Names the pass in the log."""

    def __init__(self, *, name: str, tick: float) -> None:
        super().__init__(name=name, daemon=True)
        self.tick = tick
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self.tick):
            try:
                if self.take_turn():
                    self.run_once()
            except ModelDepotError as e:  # Redis away a moment: the next tick tries again
                log.warning("%s skipped: %s", self.what, e)
            except Exception:
                log.exception("%s failed", self.what)

    def pause(self, seconds: float) -> None:
        """Wait inside a pass, but not past a stop."""
        self._stop_event.wait(seconds)

    def take_turn(self) -> bool:
        """True if this process makes this tick's pass."""
        raise NotImplementedError

    def run_once(self) -> object:
        """One pass."""
        raise NotImplementedError
