"""``GET /api/v1/events``: every change as Server-Sent Events, read from the capped Redis stream
(``Keys.events_stream``) that every write appends to.

Each event's ``id:`` is its stream id, so a client that reconnects with ``Last-Event-ID`` gets exactly the
events after the last one it received. When that id is older than the oldest one the stream still holds (it
was trimmed, or Redis lost its data), the client may have missed some: it gets ``event: resync`` first (reload
the list), then live events; ``Last-Event-ID: 0`` asks for everything the stream holds, without a resync. A
comment every :data:`KEEPALIVE_S` keeps proxies from closing an idle stream.

Each connection runs its own blocking ``XREAD`` on a Redis connection of its own (``redis.asyncio``), so one
slow or idle client never holds the event loop or a thread.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import redis
import redis.asyncio as aredis

from app.core import connection
from app.core.errors import InvalidInputError, StateUnavailableError
from app.core.settings import Settings

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
BATCH = 200
"""Most events one read hands on at once."""
RETRY_MS = 1000
"""How long a browser's EventSource waits before it reconnects."""
_ID = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")
_TYPE = re.compile(rb'"type":"([a-z_]{1,32})"')
_UNREACHABLE = ("Redis (the shared state) is unreachable, so there are no events to follow. Try again in a "
                "moment, or check that redis-server is running.")

StreamId = tuple[int, int]


def parse_id(text: str) -> StreamId:
    """``1700000000000-3`` (or ``1700000000000``) as a comparable pair.

    Raises:
        InvalidInputError: not a stream id.
    """
    match = _ID.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError(f"Last-Event-ID {text[:40]!r} is not an event id; send back the id: of the last "
                                "event you received, e.g. 1700000000000-0, or none for live events only.")
    return int(match.group(1)), int(match.group(2) or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def connect_async(settings: Settings) -> aredis.Redis:
    """A client of its own for one event stream (not yet connected).

    Raises:
        ConfigError: no Redis URL is configured.
    """
    # redis-py reads with the connect timeout unless told otherwise: a blocking read must outlast it.
    return connection.connect_async(settings, socket_connect_timeout=5, socket_timeout=KEEPALIVE_S + 10,
                                    single_connection_client=True)


class EventStream:
    """One client's stream: where it starts, whether it must resync, then the frames."""

    def __init__(self, client: aredis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.cursor = "0-0"
        self.resync: dict[str, Any] | None = None

    async def start(self, asked: str | None) -> None:
        """Start after ``asked`` (a Last-Event-ID), or after the newest event when None.

        Raises:
            InvalidInputError: ``asked`` is not an event id.
            StateUnavailableError: Redis is unreachable.
        """
        wanted = parse_id(asked) if asked is not None else None
        try:
            first: Any = await self.client.xrange(self.key, count=1)
            last: Any = await self.client.xrevrange(self.key, count=1)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            await self.close()
            raise StateUnavailableError(_UNREACHABLE) from e
        first_id = parse_id(_text(first[0][0])) if first else None
        newest = _text(last[0][0]) if last else "0-0"
        if wanted is None:
            self.cursor = newest
        elif wanted == (0, 0):  # asks for all the stream holds, knowing older events may be gone
            self.cursor = "0-0"
        elif first_id is None or wanted < first_id or wanted > parse_id(newest):
            self.cursor = newest
            self.resync = {"asked": asked, "oldest": _text(first[0][0]) if first else None, "next_after": newest,
                           "message": "Some events after the one you asked for are gone; reload the list "
                                      "(GET /api/v1/models), then follow the events after this one."}
        else:
            self.cursor = f"{wanted[0]}-{wanted[1]}"

    async def frames(self) -> AsyncIterator[bytes]:
        """The stream's bytes: the retry hint, a resync if needed, then events and keep-alive comments."""
        try:
            head = f"retry: {RETRY_MS}\n\n".encode()
            if self.resync is not None:
                head += _frame(self.cursor.encode(), b"resync", json.dumps(self.resync).encode())
            yield head
            while True:
                yield await self._next()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            log.warning("an event stream lost Redis (%s); the client reconnects with Last-Event-ID",
                        type(e).__name__)
        finally:
            await self.close()

    async def _next(self) -> bytes:
        reply: Any = await self.client.xread({self.key: self.cursor}, count=BATCH, block=int(KEEPALIVE_S * 1000))
        if not reply:
            return b": keep-alive\n\n"
        chunks = []
        for entry_id, fields in reply[0][1]:
            self.cursor = _text(entry_id)
            data = fields.get(b"event", b"{}")
            kind = _TYPE.search(data)
            chunks.append(_frame(_text(entry_id).encode(), kind.group(1) if kind else b"message", data))
        return b"".join(chunks)

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):  # also when the client left and the stream is being cancelled
            await self.client.aclose()


def _frame(entry_id: bytes, kind: bytes, data: bytes) -> bytes:
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return b"id: " + entry_id + b"\nevent: " + kind + b"\n" + lines + b"\n"
