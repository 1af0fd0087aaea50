"""``GET /api/v1/models/{org}/{name}/progress``: one model's record as newline-delimited JSON, one line per change,
until it rests (ready, failed, cancelled, paused) or is gone, like Ollama's pull stream.

Driven by this worker's replica (:class:`~app.web.api.watch.ReplicaWatch`): no Redis call, no polling, a line
within milliseconds of the change reaching the replica. A client that goes away cancels the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from app.core.controller import Controller
from app.core.records import RecordView, Status
from app.web.api.watch import ReplicaWatch

RESTING = frozenset({Status.READY, Status.FAILED, Status.CANCELLED, Status.PAUSED})
"""Statuses that end the stream: the download will not change by itself any more."""
_RECHECK_S = 30.0
"""Longest wait for a change before looking again anyway (a guard; a change wakes the stream at once)."""


def _line(record: RecordView | dict[str, object]) -> bytes:
    return orjson.dumps(record) + b"\n"


async def progress_lines(controller: Controller, watch: ReplicaWatch, first: RecordView) -> AsyncIterator[bytes]:
    """``first`` (the record now), then the record after each of its changes; the last line rests, or says
    ``{"name", "status": null}`` when the model left the list."""
    name = first["name"]
    shown: RecordView = first
    yield _line(shown)
    while shown["status"] not in RESTING:
        version = controller.version  # read before the record: a change after this read moves the version
        current = controller.models.get(name)
        if current is None:
            yield _line({"name": name, "status": None})
            return
        if current != shown:
            shown = current
            yield _line(shown)
            continue
        await watch.changed(version, _RECHECK_S)
