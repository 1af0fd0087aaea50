"""The in-memory replica of the shared state, and the pub/sub listener that keeps it current.

Events carry a version; the replica applies them strictly in order. A gap, a (re)subscribe or a reconnect
makes it reload the whole state from Redis, because pub/sub drops whatever was published while a
subscriber was away.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any, cast

import redis

from app.core.errors import StateUnavailableError
from app.core.records import RecordView
from app.core.store import LogEntry, State, Store

log = logging.getLogger(__name__)


class Applied(Enum):
    APPLIED = "applied"
    STALE = "stale"
    GAP = "gap"


class Replica:
    """This process's copy of the models and the log, at one version."""

    def __init__(self, log_size: int) -> None:
        self.version = 0
        self.structural_version = 0  # last version that was more than a progress tick
        self.models: dict[str, RecordView] = {}
        self.logs: deque[str] = deque(maxlen=log_size)
        self.synced_at = 0.0
        self._sorted: tuple[int, list[RecordView]] = (-1, [])
        self._cond = threading.Condition()
        self._listeners: list[Callable[[], None]] = []

    def reset(self, state: State, *, force: bool = False) -> None:
        """Replace everything with ``state`` unless it is older than what this replica holds."""
        with self._cond:
            if state.version < self.version and not force:
                return
            self.version = state.version
            self.structural_version = state.version
            self.models = cast(dict[str, RecordView], dict(state.models))  # Redis holds model_dump()s
            self.logs.clear()
            self.logs.extend(entry.format() for entry in state.logs)
            self.synced_at = time.time()
            self._cond.notify_all()
        self._notify()

    def apply(self, event: dict[str, Any]) -> Applied:
        """Apply one event if it is the next version."""
        version = int(event["v"])
        with self._cond:
            if version <= self.version:
                return Applied.STALE
            if version != self.version + 1 or event.get("type") == "reset":
                return Applied.GAP
            self._apply_change(event)
            self.version = version
            if event.get("type") != "progress":
                self.structural_version = version
            self.synced_at = time.time()
            self._cond.notify_all()
        self._notify()
        return Applied.APPLIED

    def _apply_change(self, event: dict[str, Any]) -> None:
        name = event.get("name")
        if name:
            record = event.get("record")
            if record is None:
                self.models.pop(name, None)
            else:
                self.models[name] = cast(RecordView, record)
        if event.get("log"):
            self.logs.append(LogEntry.from_obj(event["log"]).format())

    def sorted_models(self) -> list[RecordView]:
        """Every record sorted by name, computed once per version (records are replaced, never mutated)."""
        with self._cond:
            version, records = self._sorted
            if version != self.version:
                records = [self.models[name] for name in sorted(self.models)]
                self._sorted = (self.version, records)
            return list(records)

    def wait_for(self, version: int, timeout: float) -> bool:
        """Block until this replica reached ``version``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.version >= version, timeout=timeout)

    def on_change(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after every new version, in the thread that made it (the listener's, or a writer's):
        it must return at once, e.g. hand over to an event loop. Returns the function that stops the calls."""
        with self._cond:
            self._listeners.append(callback)

        def remove() -> None:
            with self._cond:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def _notify(self) -> None:
        for callback in tuple(self._listeners):
            try:
                callback()
            except Exception:  # a broken watcher must not stop the replica
                log.exception("a replica change callback failed")


class Listener(threading.Thread):
    """Subscribes to the events channel and feeds the replica; survives Redis restarts and kills."""

    poll_interval = 0.2
    """Longest one read of the subscription blocks: how long :meth:`stop` may wait for the thread to see its flag
    (a Ctrl-C'd command joins the listener before it exits). The read returns at once when an event comes."""
    version_check_interval = 2.0
    min_backoff = 0.1
    max_backoff = 5.0

    def __init__(self, store: Store, replica: Replica, *, on_lost: Callable[[], None] | None = None) -> None:
        super().__init__(name="modeldepot-listener", daemon=True)
        self.store = store
        self.replica = replica
        self.on_lost = on_lost
        self.connected = threading.Event()
        self.redis_version = 0
        self._stop_event = threading.Event()
        self._last_check = 0.0
        self._pending: int | None = None
        self._backoff = self.min_backoff

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def in_sync(self) -> bool:
        """Connected, and no event that Redis already had is still missing here."""
        pending = self._pending
        return self.connected.is_set() and (pending is None or self.replica.version >= pending)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._listen()
            except (redis.ConnectionError, redis.TimeoutError, StateUnavailableError, OSError) as e:
                self.connected.clear()
                log.warning("event listener lost Redis (%s); retrying in %.1fs", type(e).__name__, self._backoff)
                self._wait_before_retry()
            except Exception:
                self.connected.clear()
                log.exception("event listener failed; restarting it")
                self._wait_before_retry()

    def _wait_before_retry(self) -> None:
        self._stop_event.wait(self._backoff)
        self._backoff = min(self._backoff * 2, self.max_backoff)

    def _listen(self) -> None:
        pubsub = self.store.subscribe_events()
        try:
            while not self._stop_event.is_set():
                message = pubsub.get_message(timeout=self.poll_interval)
                if message is not None:
                    self._handle_message(message)
                self._check_version()
        finally:
            self.connected.clear()
            pubsub.close()

    def _handle_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self.resync()  # a fresh (or re-made) subscription may have missed anything before it
            self.connected.set()
            self._backoff = self.min_backoff  # back in: the next outage (another failover) starts short again
            return
        if message["type"] != "message":
            return
        try:
            event = json.loads(message["data"])
            result = self.replica.apply(event)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed event on %s", self.store.events_channel)
            return
        if result is Applied.GAP:
            self.resync()

    def _check_version(self) -> None:
        now = time.monotonic()
        if now - self._last_check < self.version_check_interval:
            return
        self._last_check = now
        local = self.replica.version  # read before Redis: our own writes reach Redis first, then us
        self.redis_version = self.store.read_version()
        pending, self._pending = self._pending, None
        if pending is not None and self.replica.version < pending:
            self.resync()  # an event seen as on its way two seconds ago never came: it was lost
        elif self.redis_version > self.replica.version:
            self._pending = self.redis_version
        elif self.redis_version < local:
            self.resync()

    def resync(self) -> None:
        """Reload the replica from Redis. A Redis behind this replica lost data (emptied, restarted without its
        files, or failed over to a replica that lacked the newest writes): ``on_lost`` restores what the snapshot
        has, and the replica takes whatever Redis then holds, even if older."""
        local = self.replica.version  # before the read, as in _check_version
        state = self.store.read_state()
        if state.version < local:
            log.warning("Redis is at version %d, behind this replica (%d): it lost data; reloading",
                        state.version, local)
            if self.on_lost is not None:
                self.on_lost()
                state = self.store.read_state()
        self.redis_version = state.version
        self.replica.reset(state, force=state.version < local)
