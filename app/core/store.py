"""Atomic reads and writes of the shared state in Redis.

Every write runs one Lua script: it compares the record with what the writer read (optimistic
concurrency), bumps the global version, stores the record and log line, and announces the change on the
pub/sub channel and the capped stream. Nothing else writes the state keys. Every write but a progress tick
then waits for a replica to hold it (:mod:`app.core.durability`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.client import Pipeline
from redis.lock import Lock

from app.core.connection import retryable
from app.core.durability import ReplicaWait
from app.core.errors import ConflictError, StateUnavailableError
from app.core.keys import Keys
from app.core.records import TRANSIENT, ModelRecord, Unchanged, check_transition
from app.core.settings import Settings

log = logging.getLogger(__name__)

ANY = "\x00any"  # expected value that skips the compare step (seeding, forced writes)
_ROOM_LOCK_TTL_S = 10
SYSTEM_USER = "modeldepot"
"""Who a log line names when no user is behind it."""

_WRITE_SCRIPT = """
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then cur = '' end
if ARGV[2] ~= '\\0any' and cur ~= ARGV[2] then return {0, cur} end
local v = redis.call('INCR', KEYS[1])
if ARGV[1] == '' then
elseif ARGV[3] == '' then redis.call('HDEL', KEYS[2], ARGV[1])
else redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
local logj = 'null'
if ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[7]), -1)
  logj = ARGV[4]
end
local rec = 'null'
if ARGV[3] ~= '' then rec = ARGV[3] end
local ev = '{"v":' .. v .. ',"type":"' .. ARGV[5] .. '","sender":' .. ARGV[6] .. ',"name":' .. ARGV[9]
  .. ',"record":' .. rec .. ',"log":' .. logj .. '}'
redis.call('PUBLISH', ARGV[10], ev)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'event', ev)
if ARGV[11] ~= '' then
  redis.call('LPUSH', KEYS[6], ARGV[11])
  redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[12]) - 1)
end
for i = 13, #ARGV, 2 do redis.call('HINCRBY', KEYS[5], ARGV[i], ARGV[i + 1]) end
return {v, ev}
"""

_SEED_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = 5 + 2 * n, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
"""

# Puts back records a failover lost (each only if it is still what the restorer read) and moves the version past
# the snapshot's, so the next snapshot is not refused as older; only while Redis is behind the snapshot.
_RESTORE_SCRIPT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 0 end
local n = tonumber(ARGV[4])
for i = 6, 5 + 3 * n, 3 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i]) or ''
  if cur == ARGV[i + 1] then redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2]) end
end
redis.call('RPUSH', KEYS[3], ARGV[5])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[3]), -1)
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], '{"v":' .. ARGV[1] .. ',"type":"reset"}')
return 1
"""

_SNAPSHOT_SCRIPT = """
local cur = tonumber(redis.call('GET', KEYS[2]))
if cur and cur >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


# How a transient status looks inside a record's JSON (pydantic writes no spaces), to skip decoding the rest.
_TRANSIENT_MARKS = tuple(f'"status":"{s.value}"'.encode() for s in TRANSIENT)


@dataclass
class LogEntry:
    """One line of the shared event log."""

    who: str
    what: str
    ts: float = field(default_factory=time.time)
    level: str = "info"

    def to_json(self) -> str:
        return json.dumps({"ts": self.ts, "who": self.who, "what": self.what, "level": self.level})

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> LogEntry:
        return cls(who=str(obj.get("who", "?")), what=str(obj.get("what", "")), ts=float(obj.get("ts", 0)),
                   level=str(obj.get("level", "info")))

    def format(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.ts))
        return f"{stamp}  {self.who}: {self.what}"


@dataclass
class State:
    """A consistent copy of everything in Redis at one version."""

    version: int
    models: dict[str, dict[str, Any]]
    logs: list[LogEntry]


@dataclass
class Tally:
    """Metric changes written in the same atomic step as the record change they count.

    Counting in the same script keeps ``/metrics`` consistent with the models list: a scrape never sees
    a model ``ready`` whose success is not counted yet, and a write that loses its compare counts nothing.
    """

    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float | None = None


DURATIONS_KEPT = 1000

Mutation = Callable[[ModelRecord | None], tuple[ModelRecord | None, LogEntry | None]]
"""Computes a record's next state from the current one (None: absent); raises Unchanged to write nothing."""


@dataclass(frozen=True)
class Change:
    """What one :meth:`Store.update` wrote: the record before and after it (None: absent), and the event."""

    before: ModelRecord | None
    after: ModelRecord | None
    event: dict[str, Any]

    @property
    def record(self) -> ModelRecord:
        """The record as written, for a change known not to be a deletion.

        Raises:
            LookupError: the change deleted the record.
        """
        if self.after is None:
            raise LookupError(f"{self.event.get('name')} was deleted by this change")
        return self.after


class Store:
    """The shared state in Redis: read it whole, or change one record atomically."""

    @classmethod
    def for_settings(cls, connection: redis.Redis, settings: Settings, *, sender: str) -> Store:
        """The store of the configured prefix and sizes on ``connection``; ``sender`` names the writer in events."""
        return cls(connection, Keys(settings.key_prefix), log_size=settings.log_size,
                   stream_size=settings.stream_size, sender=sender, wait_ms=settings.redis_wait_ms)

    def __init__(self, connection: redis.Redis, keys: Keys, *, log_size: int = 1000,
                 stream_size: int = 10_000, sender: str = "?", wait_ms: int = 1000) -> None:
        self.redis = connection
        self.replica_wait = ReplicaWait(connection, wait_ms=wait_ms)
        self.keys = keys
        self.log_size = log_size
        self.stream_size = stream_size
        self.sender = sender
        self._write = connection.register_script(_WRITE_SCRIPT)
        self._snapshot = connection.register_script(_SNAPSHOT_SCRIPT)
        self._seed = connection.register_script(_SEED_SCRIPT)
        self._restore = connection.register_script(_RESTORE_SCRIPT)

    def read_state(self) -> State:
        """Everything, read in one MULTI so it is one version."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.get(self.keys.version)
            pipe.hgetall(self.keys.models)
            pipe.lrange(self.keys.logs, 0, -1)
            raw_version, raw_models, raw_logs = pipe.execute()
        models = {_text(k): json.loads(v) for k, v in raw_models.items()}
        logs = [LogEntry.from_obj(json.loads(entry)) for entry in raw_logs]
        return State(int(raw_version or 0), models, logs)

    def read_transient(self) -> dict[str, dict[str, Any]]:
        """The records in a transient status (queued, downloading, removing), decoding only those."""
        with redis_errors():
            raw_models = self.redis.hgetall(self.keys.models)
        return {_text(k): json.loads(v) for k, v in raw_models.items() if any(m in v for m in _TRANSIENT_MARKS)}

    def read_raw_models(self) -> dict[str, str]:
        """Every record as the JSON text Redis holds (what a compare-and-write compares with)."""
        with redis_errors():
            raw_models = self.redis.hgetall(self.keys.models)
        return {_text(k): _text(v) for k, v in raw_models.items()}

    def read_version(self) -> int:
        with redis_errors():
            return int(self.redis.get(self.keys.version) or 0)

    def subscribe_events(self) -> redis.client.PubSub:
        """A pub/sub connection subscribed to the events channel (the replica's listener reads it)."""
        pubsub: redis.client.PubSub = self.redis.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        pubsub.subscribe(self.keys.events_channel)
        return pubsub

    @property
    def events_channel(self) -> str:
        return self.keys.events_channel

    def ping(self) -> None:
        """Raises: StateUnavailableError (Redis does not answer)."""
        with redis_errors():
            self.redis.ping()

    def read_tallies(self) -> tuple[dict[str, int], list[float]]:
        """The cluster-wide counters written with the records (:class:`Tally`) and the recent job durations."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(self.keys.metrics)
            pipe.lrange(self.keys.durations, 0, -1)
            raw_counters, raw_durations = pipe.execute()
        counters = {_text(k): int(v) for k, v in raw_counters.items()}
        durations = []
        for value in raw_durations:
            try:
                durations.append(float(value))
            except ValueError:
                continue
        return counters, durations

    def is_initialized(self) -> bool:
        with redis_errors():
            return bool(self.redis.exists(self.keys.version))

    def get(self, name: str) -> ModelRecord | None:
        with redis_errors():
            raw = self.redis.hget(self.keys.models, name)
        return ModelRecord.from_json(raw) if raw else None

    def update(self, name: str, mutate: Mutation, *, kind: str = "model",
               tally: Tally | None = None) -> Change | None:
        """Apply ``mutate`` to the current record atomically, retrying when someone else wrote first.

        ``tally`` is counted in the same write, so only when the mutation is applied.
        Returns what changed, or None when the mutation raised :class:`~app.core.records.Unchanged`.

        Raises:
            ConflictError: the mutation asks for a transition that is not allowed (or raises it itself).
            StateUnavailableError: Redis cannot be reached.
        """
        while True:
            with redis_errors():
                raw = self.redis.hget(self.keys.models, name)
            current = ModelRecord.from_json(raw) if raw else None
            try:
                new, entry = mutate(current.model_copy(deep=True) if current else None)
            except Unchanged:
                return None
            check_transition(name, current.status if current else None, new.status if new else None)
            if new is not None:
                new.updated_at = time.time()
            event = self._try_write(name, _text(raw) if raw else "", new, entry, kind, tally)
            if event is not None:
                return Change(current, new, event)

    def append_log(self, entry: LogEntry) -> dict[str, Any]:
        """Add a log line that changes no record."""
        event = self._try_write("", ANY, None, entry, "log")
        assert event is not None
        return event

    def force(self, name: str, record: ModelRecord | None, entry: LogEntry | None) -> dict[str, Any]:
        """Write without compare or transition check (import, adoption of files found on disk)."""
        event = self._try_write(name, ANY, record, entry, "model")
        assert event is not None
        return event

    def update_many(self, mutations: Mapping[str, Mutation], *, kind: str = "model") -> list[Change]:
        """Apply several mutations in one round trip (each record still its own atomic compare-and-write, each
        its own event): one read of every record, one pipeline of writes. A write another writer beat is done
        again by :meth:`update`. Returns the changes made.

        Raises:
            ConflictError, StateUnavailableError: as :meth:`update`.
        """
        names = list(mutations)
        with redis_errors():
            raws = self.redis.hmget(self.keys.models, names) if names else []
        planned: list[tuple[str, ModelRecord | None, ModelRecord | None, list[str | int]]] = []
        for name, raw in zip(names, raws, strict=True):
            current = ModelRecord.from_json(raw) if raw else None
            try:
                new, entry = mutations[name](current.model_copy(deep=True) if current else None)
            except Unchanged:
                continue
            check_transition(name, current.status if current else None, new.status if new else None)
            if new is not None:
                new.updated_at = time.time()
            planned.append((name, current, new, self._write_args(name, _text(raw) if raw else "", new, entry,
                                                                 kind, None)))
        def write(args: list[str | int]) -> Callable[[Pipeline], object]:
            return lambda pipe: self._write(keys=self._write_keys, args=args, client=pipe)

        with redis_errors():
            results = (self.replica_wait.pipeline(*(write(args) for *_, args in planned),
                                                  significant=kind != "progress") if planned else [])
        changes = []
        for (name, current, new, _), result in zip(planned, results, strict=True):
            change = (Change(current, new, json.loads(result[1])) if int(result[0]) else
                      self.update(name, mutations[name], kind=kind))
            if change is not None:
                changes.append(change)
        return changes

    @property
    def _write_keys(self) -> list[str]:
        return [self.keys.version, self.keys.models, self.keys.logs, self.keys.events_stream, self.keys.metrics,
                self.keys.durations]

    def _write_args(self, name: str, expected: str, record: ModelRecord | None, entry: LogEntry | None,
                    kind: str, tally: Tally | None) -> list[str | int]:
        new_raw = record.to_json() if record is not None else ""
        log_json = entry.to_json() if entry else ""
        args: list[str | int] = [name, expected, new_raw, log_json, kind, json.dumps(self.sender), self.log_size,
                                 self.stream_size, json.dumps(name), self.keys.events_channel]
        return args + _tally_args(tally)

    def _try_write(self, name: str, expected: str, record: ModelRecord | None, entry: LogEntry | None,
                   kind: str, tally: Tally | None = None) -> dict[str, Any] | None:
        args = self._write_args(name, expected, record, entry, kind, tally)
        with redis_errors():  # everything but a progress tick is worth a replica's confirmation
            result = self.replica_wait.write(lambda client: self._write(keys=self._write_keys, args=args,
                                                                         client=client),
                                             significant=kind != "progress")
        if int(result[0]) == 0:
            return None
        event: dict[str, Any] = json.loads(result[1])
        return event

    def seed(self, version: int, models: dict[str, dict[str, Any]], logs: list[LogEntry]) -> bool:
        """Load a snapshot into an empty Redis atomically; False if Redis already holds state."""
        event = json.dumps({"v": version, "type": "reset", "sender": self.sender})
        args: list[str | int] = [version, event, self.keys.events_channel, len(models)]
        for name, record in models.items():
            args += [name, json.dumps(record, separators=(",", ":"))]  # the form read_transient looks for
        args += [entry.to_json() for entry in logs[-self.log_size:]]
        with redis_errors():
            return bool(self._seed(keys=[self.keys.version, self.keys.models, self.keys.logs], args=args))

    def restore(self, version: int, records: Mapping[str, tuple[str, dict[str, Any]]], entry: LogEntry) -> bool:
        """Put back records Redis lost, at ``version`` (past the snapshot they come from), with one log line;
        False if Redis is already at or past ``version`` (another process restored first).

        ``records`` maps each name to (the raw record Redis held when it was read, "" for none; the record to put
        back); a record changed since is left as it is.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        args: list[str | int] = [version, self.keys.events_channel, self.log_size, len(records), entry.to_json()]
        for name, (expected, record) in records.items():
            args += [name, expected, json.dumps(record, separators=(",", ":"))]
        with redis_errors():
            return bool(self.replica_wait.write(
                lambda client: self._restore(keys=[self.keys.version, self.keys.models, self.keys.logs], args=args,
                                             client=client)))

    def server_id(self) -> str:
        """The run id of the Redis server answering: it changes when another server (a promoted replica, a restart)
        takes over.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        with redis_errors():
            return str(self.redis.info("server").get("run_id", ""))

    def take_watchdog_turn(self, interval_s: float) -> bool:
        """True for the first process to ask within ``interval_s``: one watchdog pass per interval in the cluster."""
        with redis_errors():
            return bool(self.redis.set(self.keys.watchdog_turn, self.sender, nx=True, px=int(interval_s * 1000)))

    def watchdog_lock(self) -> Lock:
        """The lock one watchdog pass at a time holds; short, since a pass cut off by a Redis restart leaves it
        behind until it expires."""
        return Lock(self.redis, self.keys.watchdog_lock, timeout=10, blocking=False)

    @contextmanager
    def holding_room(self, *, wait_s: float = 120.0) -> Iterator[None]:
        """Hold the lock one room check, eviction or prune at a time holds across the cluster, so two of them
        never count the same free bytes (or evict the same ones).

        Its TTL is short and renewed while held, so a holder killed inside (a cancelled download's work-horse
        gets SIGKILL) blocks the others for seconds, not minutes.

        Raises:
            ConflictError: another holder kept it for ``wait_s`` seconds.
            StateUnavailableError: Redis cannot be reached.
        """
        lock = Lock(self.redis, self.keys.room_lock, timeout=_ROOM_LOCK_TTL_S, blocking_timeout=wait_s,
                    thread_local=False)  # renewed from another thread, which must see the token
        with redis_errors():
            acquired = lock.acquire()
        if not acquired:
            raise ConflictError("Another room check, eviction or prune is running; try again in a minute.")
        released = threading.Event()
        keeper = threading.Thread(target=_keep, args=(lock, released), name="modeldepot-room-lock", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            released.set()
            keeper.join()
            try:
                lock.release()
            except redis.RedisError:  # expired or Redis gone: it frees itself
                log.warning("could not release the room lock; it expires by itself")

    def take_upkeep_turn(self, interval_s: float) -> bool:
        """True for the first process to ask within ``interval_s``: one upkeep pass per interval in the cluster."""
        with redis_errors():
            return bool(self.redis.set(self.keys.upkeep_turn, self.sender, nx=True, px=int(interval_s * 1000)))

    def usage_scan_due(self, interval_s: float) -> bool:
        """True once per ``interval_s`` across the cluster: whoever asks first runs the usage scan."""
        with redis_errors():
            return bool(self.redis.set(self.keys.usage_scan_due, self.sender, nx=True, px=int(interval_s * 1000)))

    def hub_backoff_s(self) -> float:
        """Seconds every update checker still waits because the Hub answered 429 (0: none)."""
        with redis_errors():
            left = int(self.redis.pttl(self.keys.hub_backoff))
        return max(0, left) / 1000

    def back_off_hub(self, seconds: float) -> None:
        """Make every update checker in the cluster wait ``seconds`` (the Hub's ``Retry-After``)."""
        with redis_errors():
            self.redis.set(self.keys.hub_backoff, "429", px=max(1, int(seconds * 1000)))

    def save_snapshot(self, document: str, version: int) -> bool:
        """Store the JSON snapshot for ops unless Redis already has a newer one."""
        with redis_errors():
            return bool(self._snapshot(keys=[self.keys.snapshot, self.keys.snapshot_version], args=[document, version]))


def _keep(lock: Lock, released: threading.Event) -> None:
    """Renew ``lock``'s TTL every third of it until ``released``."""
    while not released.wait(_ROOM_LOCK_TTL_S / 3):
        try:
            lock.reacquire()
        except redis.RedisError:
            log.warning("could not renew the room lock; another holder may take it")
            return


def _tally_args(tally: Tally | None) -> list[str | int]:
    if tally is None:
        return ["", DURATIONS_KEPT]
    duration = f"{tally.duration_s:.3f}" if tally.duration_s is not None else ""
    args: list[str | int] = [duration, DURATIONS_KEPT]
    for counter, amount in tally.counts.items():
        args += [counter, amount]
    return args


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class redis_errors:
    """Turn redis-py connection errors into StateUnavailableError where they enter, and so the replies of a node
    whose role is changing that outlasted the client's retries (``NOREPLICAS``, ``READONLY``...)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError) or (
                isinstance(exc, redis.ResponseError) and retryable(exc)):
            raise StateUnavailableError(
                "Redis (the shared state) is unreachable; nothing was changed. Try again in a moment, "
                "or check that redis-server is running."
            ) from exc
