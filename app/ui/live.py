"""Live updates: what each open page shows, recomputed only when the shared state changed.

Every page runs a 0.5 s timer. Its tick reads this process's replica only (``controller.version`` and
``in_sync``: no Redis call) and compares it with what the page says it shows. The page keeps that in hidden
textboxes sent with each tick, not in a ``gr.State`` held by one worker, so any UI worker can answer any
tick and the page works behind a plain round-robin balancer.

A tick outputs only two small "trigger" strings. When they are unchanged the browser does nothing more;
when one changes, its ``change`` event asks for the new view (models table, banner, disk) or the new log.
That keeps the idle tick to one cheap request: Gradio rebuilds a component for every ``gr.update``/
``gr.skip`` it returns, so a tick that skipped six outputs cost ~15 ms of CPU, one that echoes a string
well under 1 ms.

Each rendering also writes what it showed (``shown``): a page that was answered by a worker whose replica
lagged behind is compared with the newer state at the next tick and fetched again.

The expensive parts are computed once per state version and shared by all pages (:class:`Frame`,
:class:`RenderCache`), so 200 open pages cost one rendering per change, not 200.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.controller import Controller
from app.ui.disk import read_usage, render_disk
from app.ui.logs import log_tag, render_logs
from app.ui.models_table import TableQuery, render_table

K = TypeVar("K", bound=Hashable)

STALE_TEXT = "stale: Redis unreachable, showing last known state"


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
    records: list[dict[str, Any]]
    logs: list[str]
    logs_tag: str
    disk_html: str


def trigger(current: str, shown: str | None, previous: str | None) -> str:
    """The new trigger value: unchanged when the page shows ``current``, else a value it never had."""
    if shown == current:
        return previous or ""
    return f"{current}/{shown or ''}"


class LiveView:
    """Computes a page's view from the controller's replica."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.tables: RenderCache[tuple[int, TableQuery]] = RenderCache()
        self.log_views: RenderCache[tuple[int, str]] = RenderCache()
        self._frame: Frame | None = None
        self._lock = threading.Lock()

    def head(self) -> str:
        """Cheap: the replica's version and whether it is in sync."""
        return f"{self.controller.version}.{int(self.controller.in_sync)}"

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
        disk_html = render_disk(read_usage(self.controller), records)
        return Frame(version, records, logs, log_tag(logs), disk_html)

    # ---- the tick ----------------------------------------------------------------------------------

    async def tick(self, shown_view: str | None, view_trigger: str | None, shown_logs: str | None,
                   logs_trigger: str | None) -> tuple[str, str]:
        """New values of the two triggers (equal to the old ones when the page is up to date).

        A coroutine although it never waits: Gradio then runs it on the event loop instead of sending it
        to a thread, which is much of the cost of so small a call. It reads memory only and never builds a
        frame (renderings do, in threads): right after a change it compares the log with the last frame,
        so the log follows one tick after the table at worst.
        """
        frame = self._frame
        logs_tag = frame.logs_tag if frame is not None else ""
        return trigger(self.head(), shown_view, view_trigger), trigger(logs_tag, shown_logs, logs_trigger)

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

    def logs(self, text: str | None) -> tuple[str, str]:
        """The log panel, and the log tag it shows."""
        frame = self.frame()
        needle = (text or "").strip()[:200]
        rendered = self.log_views.get((frame.version, needle), lambda: render_logs(frame.logs, needle))
        return rendered, frame.logs_tag
