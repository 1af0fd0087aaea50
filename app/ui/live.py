"""Live updates: what each open page shows, recomputed only when the shared state changed.

Every page runs a 0.5 s timer. Its tick reads this process's replica only (``controller.version`` and
``in_sync``: no Redis call) and compares it with the version the page last displayed. The page holds that
version itself, in a hidden textbox sent with each tick, instead of a ``gr.State`` kept by one worker: the
tick is then answered correctly by any UI worker, so the page works behind a plain round-robin balancer.

When something changed, the expensive parts are computed once per state version and shared by all pages
(:class:`Frame`, :class:`RenderCache`), so 200 open pages cost one rendering per change, not 200.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import gradio as gr

from app.controller import Controller
from app.ui.disk import read_usage, render_disk
from app.ui.logs import log_tag, render_logs
from app.ui.models_table import TableQuery, render_table

K = TypeVar("K", bound=Hashable)

STALE_TEXT = "stale: Redis unreachable, showing last known state"
OUTPUTS = ("banner", "table", "logs", "disk", "select", "seen")
"""The components every refresh writes, in this order (see :meth:`LiveView.refresh`)."""


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
    names: list[str]
    names_tag: str
    logs: list[str]
    logs_tag: str
    disk_html: str


@dataclass(frozen=True)
class Seen:
    """What a page displays, as the hidden ``seen`` textbox holds it: ``head|logs_tag|names_tag``."""

    head: str = ""
    logs_tag: str = ""
    names_tag: str = ""

    @classmethod
    def decode(cls, raw: str | None) -> Seen:
        parts = (raw or "").split("|")
        return cls(*[*parts, "", "", ""][:3])

    def encode(self) -> str:
        return f"{self.head}|{self.logs_tag}|{self.names_tag}"


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
        names = [str(r["name"]) for r in records]
        names_tag = hashlib.blake2s("\n".join(names).encode(), digest_size=6).hexdigest()
        disk_html = render_disk(read_usage(self.controller), records)
        return Frame(version, records, names, names_tag, logs, log_tag(logs), disk_html)

    def table(self, query: TableQuery) -> str:
        frame = self.frame()
        return self.tables.get((frame.version, query), lambda: render_table(frame.records, query))

    def logs(self, text: str | None) -> str:
        frame = self.frame()
        needle = (text or "").strip()[:200]
        return self.log_views.get((frame.version, needle), lambda: render_logs(frame.logs, needle))

    def banner(self) -> dict[str, Any]:
        in_sync = self.controller.in_sync
        return gr.update(value="" if in_sync else f"⚠ {STALE_TEXT}", visible=not in_sync)

    def refresh(self, seen_raw: str | None, query: TableQuery, log_filter: str | None, *,
                force: bool = False) -> tuple[Any, ...]:
        """Values for :data:`OUTPUTS`; every one skipped when nothing changed since ``seen_raw``."""
        seen = Seen.decode(seen_raw)
        head = self.head()
        if not force and seen.head == head:
            return tuple(gr.skip() for _ in OUTPUTS)
        frame = self.frame()
        same_logs = not force and seen.logs_tag == frame.logs_tag
        same_names = not force and seen.names_tag == frame.names_tag
        now = Seen(head, frame.logs_tag, frame.names_tag)
        return (self.banner(), self.table(query),
                gr.skip() if same_logs else self.logs(log_filter), frame.disk_html,
                gr.skip() if same_names else gr.update(choices=frame.names),
                now.encode())
