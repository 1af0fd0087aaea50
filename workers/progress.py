"""Turns raw byte counts into throttled progress updates (speed, ETA) on the model record."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Protocol

from app.core.errors import JobCancelledError, JobPausedError, StateUnavailableError
from app.core.records import ModelRecord, RetryState, owned
from app.core.store import LogEntry, Store

log = logging.getLogger(__name__)

_WINDOW_S = 3.0


class ProgressLike(Protocol):
    @property
    def bytes_done(self) -> int: ...
    @property
    def bytes_total(self) -> int: ...
    @property
    def files_done(self) -> int: ...
    @property
    def files_total(self) -> int: ...
    @property
    def retry(self) -> RetryState | None: ...


class ProgressReporter:
    """Callable given to the downloader; writes at most once per ``interval`` seconds."""

    def __init__(self, store: Store, name: str, job_id: str, *, interval: float) -> None:
        self.store = store
        self.name = name
        self.job_id = job_id
        self.interval = interval
        self.cancel_requested = False
        self.pause_requested = False
        self._retry: RetryState | None = None
        self._samples: deque[tuple[float, int]] = deque()
        # The first tick waits one interval too, and for a second sample: written with a single one, it would
        # have no speed and no ETA, and the page would show "— · ETA —" for a download that is moving.
        self._last_write = time.monotonic()
        self.writes = 0

    def __call__(self, progress: ProgressLike) -> None:
        now = time.monotonic()
        self._sample(now, progress.bytes_done)
        final = progress.bytes_done >= progress.bytes_total and progress.files_done >= progress.files_total
        retry_changed = progress.retry != self._retry
        if not final and not retry_changed and (now - self._last_write < self.interval or len(self._samples) < 2):
            return
        self._last_write = now
        speed = self.speed()
        remaining = max(0, progress.bytes_total - progress.bytes_done)
        eta = remaining / speed if speed > 0 else None
        self._write(progress, speed, eta)

    def _sample(self, now: float, done: int) -> None:
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > _WINDOW_S:
            self._samples.popleft()

    def speed(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return max(0.0, (b1 - b0) / (t1 - t0)) if t1 > t0 else 0.0

    def _write(self, progress: ProgressLike, speed: float, eta: float | None) -> None:
        outage_began = progress.retry is not None and self._retry is None  # files failing together: one outage

        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            record = owned(current, self.job_id).progressed(
                bytes_done=progress.bytes_done, bytes_total=progress.bytes_total, files_done=progress.files_done,
                files_total=progress.files_total, speed_bps=round(speed, 1),
                eta_s=None if eta is None else round(eta, 1), retry=progress.retry)
            return record, self._outage_line(progress.retry) if outage_began else None

        try:
            change = self.store.update(self.name, mutate, kind="model" if outage_began else "progress")
        except StateUnavailableError:
            log.warning("progress of %s not published: Redis unreachable", self.name)
            return  # a progress tick is not worth failing a healthy download for
        self._retry = progress.retry
        self.writes += 1
        if change is not None:
            self.cancel_requested = change.record.cancel_requested
            self.pause_requested = change.record.pause_requested
        # raising here stops the download within one chunk
        if self.cancel_requested:
            raise JobCancelledError(f"download of {self.name} cancelled")
        if self.pause_requested:
            raise JobPausedError(f"download of {self.name} paused")

    def _outage_line(self, retry: RetryState | None) -> LogEntry:
        """One line per outage (not one per try): the bytes are kept and the worker keeps trying."""
        assert retry is not None
        return LogEntry("worker", f"download of {self.name} interrupted ({retry.cause}); retrying by itself, "
                                  "bytes already fetched are kept", level="warning")
