"""Watching a download by :mod:`workers.hub` from the calling thread, and stopping it from there.

The download runs in a helper thread (:class:`Runner`) so ``on_progress`` is called in the caller's thread
and anything it raises (a cancellation, a job timeout) stops the download (:func:`watch`): the progress
bars huggingface_hub updates for every chunk (:func:`quiet_bar`) then raise in all its download threads.
Progress itself is measured by polling the repo's ``blobs/`` folder (see :class:`BlobWatcher` for why).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

from workers import cache

if TYPE_CHECKING:
    from workers.hub import DownloadPlan

_ABORT_GRACE_S = 5.0
"""How long an interrupted download may take to notice it must stop before :func:`watch` re-raises."""


@dataclass(frozen=True)
class Progress:
    """Where a download stands; cached files count as done from the start."""

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int


class _DownloadAborted(Exception):
    """Raised inside the download threads once the caller has stopped waiting."""


class _QuietBar(hf_tqdm):
    """A progress bar that draws nothing and raises once ``_abort`` is set.

    snapshot_download builds its bars from ``tqdm_class`` and updates them for every chunk of every file,
    which makes ``update`` the one place where all download threads pass regularly.
    """

    _abort: ClassVar[threading.Event | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    def update(self, n: float | None = 1) -> bool | None:
        if self._abort is not None and self._abort.is_set():
            raise _DownloadAborted("download stopped by the caller")
        result: bool | None = super().update(n)
        return result


def quiet_bar(abort: threading.Event | None = None) -> type[_QuietBar]:
    """A ``tqdm_class`` for snapshot_download: draws nothing, and stops the download once ``abort`` is set."""

    class _Bar(_QuietBar):
        _abort = abort

    return _Bar


class Runner:
    """Runs the blocking download in a daemon thread and keeps its outcome."""

    def __init__(self, work: Callable[[], str]) -> None:
        self._work = work
        self._result: str | None = None
        self._error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-download", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def result(self) -> str:
        """The work's return value, or its exception raised again."""
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def _run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as e:  # handed over to the calling thread by result()
            self._error = e
        finally:
            self.done.set()


def watch(
    runner: Runner,
    watcher: BlobWatcher,
    on_progress: Callable[[Progress], None],
    abort: threading.Event,
    poll_interval: float,
) -> None:
    """Report progress until the runner is done; if anything interrupts, stop the download and re-raise."""
    runner.start()
    try:
        on_progress(watcher.progress())
        while not runner.done.wait(poll_interval):
            on_progress(watcher.progress())
    except BaseException:
        abort.set()
        runner.join(_ABORT_GRACE_S)
        raise


class BlobWatcher:
    """Measures a download from the files it writes.

    Bytes done = bytes cached before the start + sizes of every entry that appeared in ``blobs/`` since
    (``<etag>.<id>.incomplete`` files growing, then renamed to ``<etag>``). Files done = planned files whose
    snapshot link exists. Watching the disk rather than ``tqdm_class`` updates counts only bytes that
    survive, does not depend on which internal bars snapshot_download creates (it feeds two byte bars and a
    file bar from the same class), and works the same for HTTP and Xet transfers. Values never go back.
    """

    def __init__(self, plan: DownloadPlan, cache_dir: Path) -> None:
        folder = cache.repo_dir(plan.repo_id, cache_dir)
        self._blobs = folder / "blobs"
        self._snapshot = folder / "snapshots" / plan.commit
        self._known = {name for name, _ in _entries(self._blobs)}
        self._pending = {f.path for f in plan.files if not f.cached}
        self._base = plan.bytes_total - plan.bytes_needed
        self._last = Progress(
            self._base, plan.bytes_total, plan.files_total - len(self._pending), plan.files_total
        )

    def progress(self) -> Progress:
        new = sum(size for name, size in _entries(self._blobs) if name not in self._known)
        self._pending = {p for p in self._pending if not os.path.lexists(self._snapshot / p)}
        last = self._last
        self._last = Progress(
            bytes_done=min(last.bytes_total, max(last.bytes_done, self._base + new)),
            bytes_total=last.bytes_total,
            files_done=max(last.files_done, last.files_total - len(self._pending)),
            files_total=last.files_total,
        )
        return self._last

    def finished(self) -> Progress:
        total = self._last
        return Progress(total.bytes_total, total.bytes_total, total.files_total, total.files_total)


def _entries(folder: Path) -> list[tuple[str, int]]:
    """(name, size) of the files in ``folder``; files vanishing meanwhile are skipped."""
    found = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    found.append((entry.name, entry.stat().st_size))
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return []
    return found
