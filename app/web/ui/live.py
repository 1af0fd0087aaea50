"""Live updates: what each open page shows, recomputed only when the shared state changed.

Every page polls ``GET /api/state-version`` every 0.5 s from the browser (:mod:`app.web.ui.poll`): a bare route
that reads this process's replica only. When the answer differs from the head the page shows, the page runs
one Gradio event, :meth:`LiveView.sync`: the new view (banner, table, disk panel, and the head it shows)
plus a "trigger" string for the log, which changes only when the log differs from what the page shows; its
``change`` event then asks for the new log. A progress update therefore costs one rendering request per
page, a new log line two. What the page shows lives in hidden textboxes sent with each event, not in a
``gr.State`` held by one worker, so any UI worker can answer any request behind a plain round-robin
balancer. No event returns ``gr.update``/``gr.skip``: Gradio rebuilds a component for each one (~2.5 ms
of CPU), while echoing a string costs well under 1 ms.

A log rendering first waits (at most :data:`CATCH_UP_S`) for this replica to reach the version the page's
view shows, so a log fetched from a worker that lags by a few milliseconds is not older than the table.

The expensive parts are computed once per state version and shared by all pages (:class:`Frame`,
:class:`RenderCache`), so 200 open pages cost one rendering per change, not 200. The disk panel's reading of the
volume (:meth:`Controller.room`: a ``stat`` per blob) is taken again at once after a change that is more than
download progress, and at most every :data:`ROOM_REFRESH_S` while only progress changes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.core.controller import Controller, Room
from app.core.records import RecordView
from app.web.ui.disk import render_disk
from app.web.ui.logs import log_tag, render_logs
from app.web.ui.models_table import TableQuery, render_table
from app.web.ui.poll import head

K = TypeVar("K", bound=Hashable)

log = logging.getLogger(__name__)

STALE_TEXT = "stale: Redis unreachable, showing last known state"
CATCH_UP_S = 1.0
"""How long a log rendering waits for this replica to reach the version the page shows."""
ROOM_REFRESH_S = 2.0
"""How long a reading of the volume serves frames whose changes were only download progress."""


class RenderCache(Generic[K]):
    """A small thread-safe LRU of rendered HTML."""

    def __init__(self, size: int = 128) -> None:
        self.size = size
        self._items: OrderedDict[K, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], str]) -> str:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


@dataclass(frozen=True)
class Frame:
    """Everything derived from one version of the state, shared by every page."""

    version: int
    records: list[RecordView]
    logs: list[str]
    logs_tag: str
    disk_html: str


def trigger(current: str, shown: str | None, previous: str | None) -> str:
    """The new trigger value: unchanged when the page shows ``current``, else a value it never had."""
    if shown == current:
        return previous or ""
    return f"{current}/{shown or ''}"


def version_of(shown_view: str | None) -> int:
    """The version part of a head (``"12.1"`` -> 12); 0 when the page shows nothing yet."""
    number, _, _ = (shown_view or "").partition(".")
    return int(number) if number.isdigit() else 0


class LiveView:
    """Computes a page's view from the controller's replica."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.tables: RenderCache[tuple[int, TableQuery]] = RenderCache()
        self.log_views: RenderCache[tuple[int, str]] = RenderCache()
        self._frame: Frame | None = None
        self._lock = threading.Lock()
        self._room: tuple[int, float, Room | None] | None = None  # structural version, monotonic time, reading

    def head(self) -> str:
        """Cheap: the replica's version and whether it is in sync."""
        return head(self.controller.version, self.controller.in_sync)

    def frame(self) -> Frame:
        """The frame of the current version (built by the first caller after a change)."""
        frame = self._frame
        if frame is not None and frame.version == self.controller.version:
            return frame
        with self._lock:
            frame = self._frame
            if frame is None or frame.version != self.controller.version:
                frame = self._build_frame()
                self._frame = frame
            return frame

    def _build_frame(self) -> Frame:
        version = self.controller.version  # read before the data: a frame is never labelled newer than it
        records = self.controller.fetch_models()
        logs = self.controller.get_logs()
        disk_html = render_disk(self.room(), records)
        return Frame(version, records, logs, log_tag(logs), disk_html)

    def room(self) -> Room | None:
        """The volume against its limits (None: not mounted here, or unreadable, which is logged)."""
        structural, now = self.controller.structural_version, time.monotonic()
        cached = self._room
        if cached is not None and cached[0] == structural and now - cached[1] < ROOM_REFRESH_S:
            return cached[2]
        try:
            room = self.controller.room()
        except Exception:  # the panel says "not mounted" rather than breaking the page
            log.warning("could not read the models volume", exc_info=True)
            room = None
        self._room = (structural, now, room)
        return room

    async def caught_up(self, shown_view: str | None, *, timeout: float = CATCH_UP_S) -> bool:
        """Wait until this replica is at least at the version of ``shown_view`` (a head); whether it got there.

        A replica that is not in sync does not wait: it will not catch up within a page's patience.
        """
        wanted = version_of(shown_view)
        deadline = time.monotonic() + timeout
        while self.controller.version < wanted and self.controller.in_sync:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return self.controller.version >= wanted

    # ---- renderings ----------------------------------------------------------------------------------

    def table(self, query: TableQuery) -> str:
        frame = self.frame()
        return self.tables.get((frame.version, query), lambda: render_table(frame.records, query))

    def banner(self) -> str:
        if self.controller.in_sync:
            return ""
        return f'<div class="md-stale-box" role="alert">⚠ {STALE_TEXT}</div>'

    def view(self, query: TableQuery) -> tuple[str, str, str, str]:
        """Banner, table, disk panel, and the head they show."""
        head = self.head()  # before the data, like the frame's version
        frame = self.frame()
        return self.banner(), self.table(query), frame.disk_html, head

    def sync(self, query: TableQuery, shown_logs: str | None, logs_trigger: str | None) -> tuple[str, ...]:
        """:meth:`view`, and the new log trigger (unchanged when the page shows the current log)."""
        view = self.view(query)
        return (*view, trigger(self.frame().logs_tag, shown_logs, logs_trigger))

    def logs(self, text: str | None) -> tuple[str, str]:
        """The log panel, and the log tag it shows."""
        frame = self.frame()
        needle = (text or "").strip()[:200]
        rendered = self.log_views.get((frame.version, needle), lambda: render_logs(frame.logs, needle))
        return rendered, frame.logs_tag
