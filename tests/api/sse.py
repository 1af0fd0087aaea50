"""A small reader of the two streams the API sends: Server-Sent Events and newline-delimited JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    """One SSE block: an event (``id``, ``event``, ``data``), a ``retry`` hint, or a comment."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Reads SSE blocks from a streaming httpx response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self.lines = response.iter_lines()

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield self.next()

    def next(self) -> Event:
        event, data = Event(), []
        for line in self.lines:
            if line == "":
                if data or event.id or event.event or event.retry is not None:
                    event.data = "\n".join(data)
                    return event
                continue
            if line.startswith(":"):
                return Event(comment=line[1:].strip())
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "data":
                data.append(value)
            elif key == "id":
                event.id = value
            elif key == "event":
                event.event = value
            elif key == "retry":
                event.retry = int(value)
        raise EOFError("the stream ended")

    def events(self) -> Iterator[Event]:
        """Only the events (no hints, no comments)."""
        return (e for e in self if e.event is not None)


def ndjson(response: httpx.Response) -> Iterator[dict[str, Any]]:
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("application/x-ndjson")
    for line in response.iter_lines():
        if line:
            yield json.loads(line)
