"""The API's two streams as the follow loops of app/cli/follow.py read them (docs/api.md):

- :class:`ProgressFeed`: one model's ``/progress`` (NDJSON: the record now, then one line per change until it
  ends), what `pull --wait` and `update --wait` show;
- :class:`EventFeed`: ``/events`` (Server-Sent Events of every change) applied to a :class:`LiveState`, what
  `logs --follow` and `outdated --check` read; a dropped connection is resumed with ``Last-Event-ID``.

Each reads in a daemon thread of its own, so the main thread only ever waits on a condition with a timeout and
sees Ctrl-C between two waits (app/cli/follow.py); a stream that fails for good hands its error to the next
wait, where the command reports it as any other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

import httpx

from app.cli.follow import END_STATES
from app.core.errors import ModelDepotError, NotFoundError, StateUnavailableError
from app.core.records import RecordView
from app.core.store import LogEntry

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
"""Longest wait between two attempts to reconnect a dropped stream (seconds)."""
QUIET_S = 60.0
"""A stream silent this long is opened again: the events stream sends a comment every 15 s, so a connection
that says nothing for this long is dead; a progress stream says nothing while its download waits."""

Opener = Callable[[dict[str, str]], httpx.Response]
"""Opens a stream with these extra headers and returns the response once its status was checked.

Raises: the :mod:`app.core.errors` class of the API's error, or ServerUnreachableError."""

Loader = Callable[[], tuple[list[RecordView], list[str]]]
"""Reads the whole list and log (``GET /models``, ``GET /logs``)."""


@dataclass(frozen=True)
class ServerEvent:
    """One event of a ``text/event-stream``."""

    type: str
    data: str
    id: str | None


def server_events(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """The events of an event stream's lines (the WHATWG rules: comments skipped, ``data`` lines joined, the last
    ``id`` carried on). An event with a type but no data (``event: resync``) is passed on too."""
    kind, last_id = "", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data or kind:
                yield ServerEvent(kind or "message", "\n".join(data), last_id)
            kind, data = "", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id" and "\0" not in value:
                last_id = value


class Stream:
    """A daemon thread reading one stream, its wake-up condition and the error that ended it."""

    def __init__(self, name: str) -> None:
        self.version = 0
        self._cond = threading.Condition()
        self._error: ModelDepotError | None = None
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def wait_for(self, version: int, timeout: float) -> bool:
        """Block until ``version`` was reached; False on timeout.

        Raises:
            ModelDepotError: the stream failed for good (a revoked token, the model's end unknown...).
        """
        with self._cond:
            reached = self._cond.wait_for(lambda: self.version >= version or self._error is not None, timeout)
            if self._error is not None:
                raise self._error
            return reached

    def close(self) -> None:
        """Stop reading; the thread ends when its read returns (it is a daemon: it never holds up the exit)."""
        self._stop.set()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _changed(self, change: Callable[[], None]) -> None:
        with self._cond:
            change()
            self.version += 1
            self._cond.notify_all()

    def _fail(self, error: ModelDepotError) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                response = self._response if self._response is not None else self._reopen()
                if response is None:
                    return
                self._response = response
                self._read(response)
                if self._ended():
                    return
                backoff = 0.1  # it ended without its last word (a proxy's idle timeout?): reconnect soon
            except httpx.ReadTimeout:
                # a progress stream says nothing while its download waits; reconnecting costs one request
                log.info("nothing on the %s stream for %.0f s; reconnecting", self._thread.name, QUIET_S)
            except (httpx.TransportError, StateUnavailableError) as e:
                if self._stop.is_set():
                    return
                log.warning("lost the %s stream (%s); reconnecting in %.1fs", self._thread.name, e, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except ModelDepotError as e:
                self._fail(e)
                return
            except Exception as e:
                if not self._stop.is_set():
                    log.exception("reading the %s stream failed", self._thread.name)
                    self._fail(ModelDepotError(f"reading the {self._thread.name} stream failed "
                                               f"({type(e).__name__}: {e}); run again with --debug to see why."))
                return
            finally:
                self._drop_response()
            self._stop.wait(backoff)

    def _drop_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()

    def _reopen(self) -> httpx.Response | None:
        """Open the stream again after it dropped; None when there is nothing more to read."""
        raise NotImplementedError

    def _read(self, response: httpx.Response) -> None:
        raise NotImplementedError

    def _ended(self) -> bool:
        """True once the stream said all it will say (a reconnect would not add anything)."""
        return False


class ProgressFeed(Stream):
    """A model's progress stream as :class:`~app.cli.depot.Live`: ``models`` holds its latest line, nothing once
    the model is gone."""

    def __init__(self, name: str, opener: Opener) -> None:
        super().__init__(f"progress of {name}")
        self.name = name
        self._open = opener
        self._models: dict[str, RecordView] = {}
        self._final = False
        self._lines: Iterator[str] | None = None

    @classmethod
    def open(cls, name: str, opener: Opener) -> ProgressFeed:
        """Open the stream and read its first line (the record now) before returning.

        Raises:
            NotFoundError, PermissionDeniedError, ServerUnreachableError...: as the API answers.
        """
        feed = cls(name, opener)
        response = feed._reopen()
        assert response is not None
        try:
            feed._take(_first_line(feed._lines or iter(())))
        except BaseException:
            response.close()
            raise
        feed._response = response
        feed._thread.start()
        return feed

    @property
    def models(self) -> Mapping[str, RecordView]:
        return self._models

    @property
    def replica(self) -> ProgressFeed:
        return self

    def _reopen(self) -> httpx.Response | None:
        try:
            response = self._open({})
        except NotFoundError:
            if not self._thread.is_alive():
                raise  # the first call: no such model
            self._changed(self._gone)  # removed while the stream was down
            return None
        self._lines = response.iter_lines()
        return response

    def _read(self, response: httpx.Response) -> None:
        for line in self._lines or response.iter_lines():
            if line.strip():
                self._take(line)
            if self._final or self._stop.is_set():
                return

    def _ended(self) -> bool:
        return self._final

    def _take(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError as e:
            raise ModelDepotError(f"the progress of {self.name} came as something other than JSON lines "
                                  f"({line[:80]!r}); is MODELDEPOT_URL a Model Depot UI worker?") from e
        if not isinstance(record, dict):
            raise ModelDepotError(f"unexpected line in the progress of {self.name}: {line[:80]!r}")
        if record.get("status") is None:
            self._changed(self._gone)
        else:
            self._changed(lambda: self._set(cast(RecordView, record)))

    def _set(self, record: RecordView) -> None:
        self._models = {self.name: record}
        self._final = record["status"] in END_STATES

    def _gone(self) -> None:
        self._models, self._final = {}, True


def _first_line(lines: Iterator[str]) -> str:
    for line in lines:
        if line.strip():
            return line
    raise StateUnavailableError("the progress stream ended before its first line; try again.")


class LiveState:
    """The models and the log as the events stream keeps them: what the replica is to a direct command.

    Records are replaced, never changed in place, so a reader in the main thread never sees one half written.
    """

    def __init__(self, log_size: int) -> None:
        self.models: dict[str, RecordView] = {}
        self.logs: deque[str] = deque(maxlen=log_size)

    def reset(self, models: list[RecordView], logs: list[str]) -> None:
        self.models = {record["name"]: record for record in models}
        self.logs.clear()
        self.logs.extend(logs)

    def apply(self, event: Mapping[str, Any], *, with_log: bool = True) -> None:
        """One change of the stream (``{"v", "type", "sender", "name", "record", "log"}``)."""
        name = event.get("name")
        if name:
            record = event.get("record")
            models = dict(self.models)
            if record is None:
                models.pop(name, None)
            else:
                models[name] = cast(RecordView, record)
            self.models = models
        entry = event.get("log")
        if with_log and isinstance(entry, dict):
            self.logs.append(LogEntry.from_obj(entry).format())


def new_in_stream(history: list[str], arrived: list[str]) -> int:
    """How many of the log lines that ``arrived`` on the stream before ``history`` was read are in it already:
    the longest start of ``arrived`` that ``history`` ends with (the stream was opened first, so nothing falls
    between the two)."""
    for overlap in range(min(len(history), len(arrived)), 0, -1):
        if history[-overlap:] == arrived[:overlap]:
            return overlap
    return 0


class EventFeed(Stream):
    """The events stream kept in a :class:`LiveState`, as :class:`~app.cli.depot.Live`."""

    def __init__(self, opener: Opener, loader: Loader, *, log_size: int) -> None:
        super().__init__("events")
        self.state = LiveState(log_size)
        self._open = opener
        self._load = loader
        self._last_id: str | None = None
        self._early: list[dict[str, Any]] | None = []  # events read before the first load finished

    @classmethod
    def open(cls, opener: Opener, loader: Loader, *, log_size: int) -> EventFeed:
        """Open the stream, then read the list and the log: a change in between is in both, and counted once.

        Raises:
            PermissionDeniedError, ServerUnreachableError...: as the API answers.
        """
        feed = cls(opener, loader, log_size=log_size)
        feed._response = opener({})
        feed._thread.start()
        try:
            models, logs = loader()
        except BaseException:
            feed.close()
            raise
        feed._changed(lambda: feed._start_with(models, logs))
        return feed

    @property
    def models(self) -> Mapping[str, RecordView]:
        return self.state.models

    @property
    def replica(self) -> EventFeed:
        return self

    def _start_with(self, models: list[RecordView], logs: list[str]) -> None:
        early, self._early = self._early or [], None
        self.state.reset(models, logs)
        lines = [LogEntry.from_obj(e["log"]).format() for e in early if isinstance(e.get("log"), dict)]
        seen = new_in_stream(logs, lines)
        for event in early:
            logged = isinstance(event.get("log"), dict)
            self.state.apply(event, with_log=not (logged and seen > 0))
            seen -= 1 if logged else 0

    def _reopen(self) -> httpx.Response:
        if self._last_id is not None:
            return self._open({"Last-Event-ID": self._last_id})
        response = self._open({})  # no event came yet, so there is no id to resume after: read everything again
        try:
            self._reload()
        except BaseException:
            response.close()
            raise
        return response

    def _read(self, response: httpx.Response) -> None:
        for event in server_events(response.iter_lines()):
            if self._stop.is_set():
                return
            if event.type == "resync":
                self._reload()
            elif event.data:
                self._take(event.data)
            if event.id:
                self._last_id = event.id

    def _reload(self) -> None:
        """The stream no longer holds what was missed: read the list and the log again."""
        models, logs = self._load()
        self._changed(lambda: self.state.reset(models, logs))

    def _take(self, data: str) -> None:
        try:
            change = json.loads(data)
        except ValueError:
            log.warning("ignoring an event that is not JSON: %.80r", data)
            return
        if not isinstance(change, dict):
            return
        with self._cond:
            if self._early is not None:
                self._early.append(change)
                return
        self._changed(lambda: self.state.apply(change))
