"""Following the live replica from a script: a model until it finishes or pauses, the event log as it grows.

Both poll the replica the controller's listener keeps current, waking as soon as a new version arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from app.core.records import FINISHED, Status

if TYPE_CHECKING:
    from app.core.controller import Controller

Record = dict[str, Any]

END_STATES = FINISHED | {Status.PAUSED}
"""Where following a download stops: nothing moves a record on from these without a person (or a new pull)."""


class WaitTimeout(Exception):
    """The model did not finish within the time given; ``record`` is where it was."""

    def __init__(self, record: Record | None) -> None:
        super().__init__("timed out")
        self.record = record


def follow_model(
    controller: Controller,
    name: str,
    on_change: Callable[[Record | None], None],
    *,
    timeout: float | None = None,
    poll: float = 0.5,
) -> Record | None:
    """Call ``on_change`` whenever the record changes; return it once in :data:`END_STATES` (None once removed).

    Raises:
        WaitTimeout: ``timeout`` seconds passed first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: Record | None = {}
    while True:
        record = controller.models.get(name)
        if record != last:
            on_change(record)
            last = record
        if record is None or record.get("status") in END_STATES:
            return record
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(record)
        controller.replica.wait_for(controller.version + 1, timeout=poll)


def follow_logs(
    controller: Controller,
    emit: Callable[[str], None],
    *,
    poll: float = 0.5,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Call ``emit`` with each new log line until ``should_stop()`` (or KeyboardInterrupt)."""
    seen = controller.get_logs()
    while not should_stop():
        controller.replica.wait_for(controller.version + 1, timeout=poll)
        current = controller.get_logs()
        for line in new_lines(seen, current):
            emit(line)
        seen = current


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
