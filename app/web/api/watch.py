"""Waiting on the event loop for the replica to change, without a thread per waiter and without polling.

The replica calls :meth:`ReplicaWatch._changed` in the thread that moved its version (the listener's, or a
writer's); that hands one wake-up to the event loop, which resolves every waiting future. A change costs the
loop one callback however many streams wait, and nothing when none does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from app.core.sync import Replica


class ReplicaWatch:
    """Lets coroutines of one event loop wait until the replica's version differs from the one they read."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: Callable[[], None] | None = None

    async def changed(self, version: int, timeout: float) -> bool:
        """Wait until the replica is no longer at ``version``; False when ``timeout`` seconds passed first."""
        if self.replica.version != version:
            return True
        loop = asyncio.get_running_loop()
        self._attach(loop)
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.add(future)
        try:
            if self.replica.version != version:  # changed between the first look and the registration
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
            return self.replica.version != version
        finally:
            self._waiters.discard(future)

    async def reached(self, version: int, timeout: float) -> bool:
        """Wait until the replica is at ``version`` or later; False when ``timeout`` seconds passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.replica.version < version:
            left = deadline - loop.time()
            if left <= 0:
                return False
            await self.changed(self.replica.version, left)
        return True

    def close(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        self.close()
        self._loop = loop
        self._stop = self.replica.on_change(self._changed)

    def _changed(self) -> None:
        """In the thread that changed the replica: wake the loop only when someone waits."""
        loop = self._loop
        if self._waiters and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for future in tuple(self._waiters):
            if not future.done():
                future.set_result(None)
