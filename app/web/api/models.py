"""The model routes: list, read, download, remove, the actions on one model, update checks, prune, progress.

A name in a path is ``{org}/{name}``, with ``@revision`` after it (``%40`` works too); a revision may hold
slashes (``refs/pr/1``), so the name is everything between ``/models/`` and the route's last part.

Reads come from this worker's replica (memory only); writes go through the same
:class:`~app.core.controller.Controller` calls as the page, so they refuse the same input with the same message.
A write's answer carries this worker's ``version``; a read given ``?version=`` first waits (a moment at most) for
its replica to get there, so a script that changed something on one worker sees the change on any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from app.core.controller import Controller
from app.core.controller import Outcome as Done
from app.core.errors import NotFoundError
from app.core.records import ModelRecord, RecordView, Status, disk_bytes
from app.web.api import schemas
from app.web.api.callers import CallerDep
from app.web.api.progress import progress_lines
from app.web.api.responses import STREAMING, json_response
from app.web.api.schemas import Action
from app.web.api.watch import ReplicaWatch
from app.web.ui.disk import prune_message

READ_WAIT_S = 2.0
"""Longest a read given ``?version=`` waits for this worker's replica to reach it."""
_ACTIONS: dict[Action, tuple[str, Callable[[Controller, str, str | None], Done]]] = {
    Action.CANCEL: ("cancel downloads", lambda c, name, who: c.cancel_download(name, requested_by=who)),
    Action.RETRY: ("retry downloads", lambda c, name, who: c.retry_download(name, requested_by=who)),
    Action.VERIFY: ("verify models", lambda c, name, who: c.verify_model(name, requested_by=who)),
    Action.PAUSE: ("pause downloads", lambda c, name, who: c.pause_download(name, requested_by=who)),
    Action.RESUME: ("resume downloads", lambda c, name, who: c.resume_download(name, requested_by=who)),
    Action.UPDATE: ("update models", lambda c, name, who: c.update_model(name, requested_by=who)),
    Action.PIN: ("pin models", lambda c, name, who: c.pin_model(name, requested_by=who)),
    Action.UNPIN: ("unpin models", lambda c, name, who: c.unpin_model(name, requested_by=who)),
    Action.CHECK: ("check for updates", lambda c, name, who: c.check_updates(name, requested_by=who)),
}
VersionQuery = Annotated[int | None, Query(ge=0, description="Answer from a replica at least this new: the "
                                                             "version of a write's answer (waits 2 s at most)")]


class Listing:
    """``{"models": [...]}`` as bytes, serialized once per replica version for the whole list."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._cached: tuple[int, bytes] = (-1, b"")

    def body(self, status: Status | None, q: str | None) -> bytes:
        version = self.controller.version  # before the read: a newer list under an older version is only rebuilt
        if status is None and not q:
            cached_version, cached = self._cached
            if cached_version == version:
                return cached
            body = orjson.dumps({"models": self.controller.fetch_models()})
            self._cached = (version, body)
            return body
        return orjson.dumps({"models": [r for r in self.controller.fetch_models() if _matches(r, status, q)]})


def _matches(record: RecordView, status: Status | None, q: str | None) -> bool:
    if status is not None and record["status"] != status.value:
        return False
    return not q or q.lower() in record["name"].lower()


def _outcome(controller: Controller, done: Done) -> schemas.Outcome:
    return schemas.Outcome(name=done.name, job_id=done.job_id, message=done.message, changed=done.changed,
                           version=controller.version)


def models_router(controller: Controller, watch: ReplicaWatch) -> APIRouter:
    """Every ``/models`` route, ``/updates/check`` and ``/prune``."""
    router = APIRouter(tags=["models"])
    listing = Listing(controller)

    async def caught_up(version: int | None) -> None:
        if version:
            await watch.reached(version, READ_WAIT_S)

    @router.get("/models", response_model=schemas.ModelList)
    async def list_models(_: CallerDep, status: Status | None = None,
                          q: Annotated[str | None, Query(max_length=200, description="Part of the name")] = None,
                          version: VersionQuery = None) -> Response:
        """Every model record (the keys and order of `fetch_models`), optionally only one status or names with
        `q` in them (any case)."""
        await caught_up(version)
        return json_response(listing.body(status, q))

    @router.get("/models/{org}/{name:path}/progress", response_class=StreamingResponse,
                responses={200: {"content": {"application/x-ndjson": {}},
                                 "description": "One record per line, until it rests or is gone"}})
    async def follow_progress(org: str, name: str, _: CallerDep, version: VersionQuery = None) -> StreamingResponse:
        """The record now, then one line per change of it, until it is ready, failed, cancelled or paused (the
        last line; its `error` says why), or `{"name", "status": null}` when it left the list."""
        await caught_up(version)
        first = controller.get_model(f"{org}/{name}")
        return StreamingResponse(progress_lines(controller, watch, first), media_type="application/x-ndjson",
                                 headers=STREAMING)

    @router.get("/models/{org}/{name:path}", response_model=ModelRecord)
    async def get_model(org: str, name: str, _: CallerDep, version: VersionQuery = None) -> Response:
        """One record (`org/name` or `org/name@revision`)."""
        await caught_up(version)
        return json_response(orjson.dumps(controller.get_model(f"{org}/{name}")))

    @router.post("/models", status_code=202, response_model=schemas.Outcome)
    def download(body: schemas.DownloadRequest, caller: CallerDep) -> schemas.Outcome:
        """Queue a download. Asked again while it is queued or downloading: the same `job_id`, `changed` false."""
        who = caller.admin("download models")
        done = controller.download_model(body.model, body.revision, body.include or None, body.exclude or None,
                                         requested_by=who)
        return _outcome(controller, done)

    @router.delete("/models/{org}/{name:path}", status_code=202, response_model=schemas.Removal)
    def remove(org: str, name: str, caller: CallerDep) -> schemas.Removal:
        """Delete the model's files (as a job) and drop it from the list; cancels its download first."""
        who = caller.admin("remove models")
        model = f"{org}/{name}"
        try:
            before: RecordView | None = controller.get_model(model)
        except NotFoundError:
            before = None  # this replica may lag behind a download asked on another worker: Redis decides
        done = controller.remove_model(model, requested_by=who)
        before = before or controller.models.get(done.name)
        return schemas.Removal(**_outcome(controller, done).model_dump(),
                               freed_bytes=disk_bytes(before) if before else 0)

    @router.post("/models/{org}/{name:path}/{action}", status_code=202, response_model=schemas.Outcome)
    def act(org: str, name: str, action: Action, caller: CallerDep) -> schemas.Outcome:
        """`cancel`, `retry`, `verify`, `pause`, `resume`, `update`, `pin`, `unpin`, or `check` (for updates)."""
        what, call = _ACTIONS[action]
        return _outcome(controller, call(controller, f"{org}/{name}", caller.admin(what)))

    @router.post("/updates/check", status_code=202, response_model=schemas.Outcome)
    def check_all(caller: CallerDep) -> schemas.Outcome:
        """Check every ready model that follows a branch for a newer commit (a job; the records show the result)."""
        return _outcome(controller, controller.check_updates(requested_by=caller.admin("check for updates")))

    @router.post("/prune", response_model=schemas.Pruned)
    def prune(caller: CallerDep, body: schemas.PruneRequest | None = None) -> schemas.Pruned:
        """Remove (or with `dry_run` only list) the least recently used unpinned idle models until the models fit
        the quota and the volume is under its low watermark. Needs the models volume mounted here."""
        who = caller.admin("prune models")
        pruned = controller.prune(dry_run=body.dry_run if body else False, requested_by=who)
        victims = [schemas.Victim(name=v.name, size_bytes=v.size_bytes, idle_since=v.idle_since)
                   for v in pruned.plan.victims]
        return schemas.Pruned(dry_run=pruned.dry_run, removing=list(pruned.removing), victims=victims,
                              message=prune_message(pruned))

    return router
