"""Following the live replica from a script: a model until it finishes or pauses, an update check until every
model has its answer, the event log as it grows.

Both poll what keeps the records current (a controller's replica, or over HTTP the API's streams: see
app/cli/streams.py), waking as soon as a new version arrives, and end on Ctrl-C. While they follow, SIGINT only
sets a flag (:func:`catching_interrupts`) that they look at between two waits: a KeyboardInterrupt raised wherever
the main thread happens to be (inside a Redis read, a condition wait or the join of the listener thread) could
leave the process half shut down.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from app.core.records import FINISHED, RecordView, Status

if TYPE_CHECKING:
    from app.cli.depot import Depot, Live


END_STATES = FINISHED | {Status.PAUSED}
"""Where following a download stops: nothing moves a record on from these without a person (or a new pull)."""

STOP_CHECK = 0.1
"""Longest a follow loop waits for a new version before it looks at Ctrl-C again (seconds)."""


class Interruption:
    """Whether Ctrl-C (SIGINT) came while :func:`catching_interrupts` was active."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The SIGINT handler: note it and return, so that whatever the main thread was doing goes on."""
        self._event.set()


@contextlib.contextmanager
def catching_interrupts() -> Iterator[Interruption]:
    """Make SIGINT set an :class:`Interruption` instead of raising KeyboardInterrupt, until the block ends.

    Nested blocks share the outer one's interruption. A SIGINT the process inherited as ignored counts too:
    a shell ignores it in its background jobs (``modeldepot logs -f &`` in a script), and a following command
    that nothing but a kill could stop is worse than one that breaks that convention.
    """
    current = signal.getsignal(signal.SIGINT)
    active = getattr(current, "__self__", None)
    if isinstance(active, Interruption):
        yield active
        return
    interruption = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield interruption  # only the main thread receives signals, and only it may set their handlers
        return
    signal.signal(signal.SIGINT, interruption.handle)
    try:
        yield interruption
    finally:
        signal.signal(signal.SIGINT, current if current is not None else signal.SIG_DFL)


class WaitTimeout(Exception):
    """The model did not finish within the time given; ``record`` is where it was."""

    def __init__(self, record: RecordView | None) -> None:
        super().__init__("timed out")
        self.record = record


def follow_model(
    controller: Live,
    name: str,
    on_change: Callable[[RecordView | None], None],
    *,
    timeout: float | None = None,
    poll: float = STOP_CHECK,
) -> RecordView | None:
    """Call ``on_change`` whenever the record changes; return it once in :data:`END_STATES` (None once removed).

    Raises:
        WaitTimeout: ``timeout`` seconds passed first.
        KeyboardInterrupt: Ctrl-C came first; raised here, between two waits, never from inside one.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: object = _NOTHING_SHOWN  # unlike any record, and unlike None (the record is gone)
    with catching_interrupts() as interruption:
        while not interruption.is_set():
            record = controller.models.get(name)
            if record is not last and record != last:
                on_change(record)
                last = record
            if record is None or record.get("status") in END_STATES:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(record)
            controller.replica.wait_for(controller.version + 1, timeout=poll)
    raise KeyboardInterrupt


_NOTHING_SHOWN = object()


class ChecksPending(Exception):
    """The update check did not answer for every model in time; ``names`` are those still waiting."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"{len(names)} models not checked yet")
        self.names = names


def wait_checked(
    controller: Live, before: Mapping[str, float | None], *, timeout: float, poll: float = STOP_CHECK
) -> None:
    """Return once every model of ``before`` that is still ready was checked again: its ``checked_at`` differs
    from the one ``before`` gives (read when the check was asked).

    Compared with that value rather than with this host's clock, so that a worker whose clock is behind does not
    make the wait last until the timeout.

    Raises:
        ChecksPending: ``timeout`` seconds passed first.
        KeyboardInterrupt: Ctrl-C came first; raised here, between two waits, never from inside one.
    """
    deadline = time.monotonic() + timeout
    with catching_interrupts() as interruption:
        while not interruption.is_set():
            pending = unchecked(controller.models, before)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise ChecksPending(pending)
            controller.replica.wait_for(controller.version + 1, timeout=poll)
    raise KeyboardInterrupt


def unchecked(models: Mapping[str, RecordView], before: Mapping[str, float | None]) -> list[str]:
    """The models of ``before`` still ready whose ``checked_at`` has not moved (removed ones are not waited for)."""
    return [name for name, checked_at in before.items()
            if (record := models.get(name)) is not None and record["status"] == Status.READY
            and record.get("checked_at") == checked_at]


def follow_logs(
    controller: Depot,
    emit: Callable[[str], None],
    *,
    since: Sequence[str] | None = None,
    poll: float = STOP_CHECK,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Call ``emit`` with each log line newer than ``since`` (default: the log now) until Ctrl-C or ``should_stop()``.

    Returns on Ctrl-C instead of raising: it is how following the log ends.
    """
    seen = controller.get_logs() if since is None else list(since)
    shown: int | None = None  # the version whose log was last compared with ``seen``
    with catching_interrupts() as interruption:
        while not (interruption.is_set() or should_stop()):
            version = controller.version  # before the log: a change in between is seen at the next turn
            if version != shown:
                current = controller.get_logs()
                for line in new_lines(seen, current):
                    emit(line)
                seen, shown = current, version
            controller.replica.wait_for(version + 1, timeout=poll)


def new_lines(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """Lines of the capped log ``after`` that ``before`` did not have yet.

    The log only grows at its end and drops lines at its start, so ``after`` is a tail of ``before``
    followed by the new lines. If no tail matches (the log was replaced), everything in ``after`` is new.
    """
    for dropped in range(len(before) + 1):
        kept = len(before) - dropped
        if list(after[:kept]) == list(before[dropped:]):
            return list(after[kept:])
    return list(after)
