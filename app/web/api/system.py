"""The routes about the depot as a whole: the health report, the event log, its live events, and who is calling."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse

from app.core import status
from app.core.controller import Controller
from app.core.keys import Keys
from app.core.status import HealthReport
from app.web.api import schemas
from app.web.api.callers import CallerDep
from app.web.api.events import EventStream, connect_async, parse_id
from app.web.api.responses import STREAMING, json_response


def health_report(controller: Controller) -> HealthReport:
    """What `modeldepot status` reports, read from this worker's settings, Redis and replica.

    Raises:
        StateUnavailableError: Redis went away while the report was being read.
    """
    return status.health_report(controller.settings, controller.brief_redis, lambda: contextlib.nullcontext(controller))


def system_router(controller: Controller) -> APIRouter:
    """``/status``, ``/logs``, ``/events`` and ``/me``."""
    router = APIRouter(tags=["depot"])
    stream_key = Keys(controller.settings.key_prefix).events_stream

    @router.get("/status", responses={200: {"description": "The health report, as `modeldepot status --json`"}})
    def status(_: CallerDep) -> Response:
        """Redis, the queues and their workers (alive or gone), models by status, the volume, room and limits;
        `healthy` is false (and `problems` says why) when Redis is unreachable or a queue has no live worker."""
        report = health_report(controller)
        body: dict[str, Any] = {**asdict(report), "healthy": report.healthy}
        return json_response(orjson.dumps(body))

    @router.get("/logs", response_model=schemas.Logs)
    async def logs(_: CallerDep, n: Annotated[int, Query(ge=1, le=1_000_000)] = 100) -> Response:
        """The newest `n` lines of the shared event log, oldest first."""
        return json_response(orjson.dumps({"logs": controller.get_logs()[-n:]}))

    @router.get("/events", response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}})
    async def events(_: CallerDep, last_event_id: Annotated[str | None, Header(max_length=64)] = None,
                     since: Annotated[str | None, Query(max_length=64, description="Last-Event-ID, for clients "
                                                                                  "that cannot send it")] = None,
                     ) -> StreamingResponse:
        """Every change as `id: <stream id>`, `event: <type>` (`model`, `progress`, `log`), `data: <event JSON>`.
        Reconnect with `Last-Event-ID` to miss nothing the stream still holds; `event: resync` says some events are
        gone (reload the list). A comment line every 15 s keeps the connection open."""
        asked = last_event_id or since
        if asked is not None:
            parse_id(asked)  # a bad id is a 400 before any connection is made
        stream = EventStream(connect_async(controller.settings), stream_key)
        await stream.start(asked)
        return StreamingResponse(stream.frames(), media_type="text/event-stream",
                                 headers=STREAMING)

    @router.get("/me", response_model=schemas.Me)
    async def me(caller: CallerDep) -> schemas.Me:
        """Who the API takes you for, with which role, and how it knew (`token`, `session`, `header`, `open`)."""
        return schemas.Me(user=caller.user.name, role=caller.user.role, via=caller.via.value)

    return router
