"""The ``/api/v1`` sub-application: its routes, who may call them, its error shape, body limits and CORS.

Mounted on the UI worker's app (:func:`mount_api`), so its OpenAPI document is ``/api/v1/openapi.json``, its docs
page ``/api/v1/docs``, and its middleware (CORS, body limits) and error handlers touch nothing outside it.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Match, Mount
from starlette.types import Scope

from app.core.controller import Controller
from app.core.settings import Settings
from app.web.api.bodies import BodyLimits
from app.web.api.callers import Callers
from app.web.api.errors import CatchAll, add_error_handlers
from app.web.api.models import models_router
from app.web.api.schemas import Error
from app.web.api.system import system_router
from app.web.api.tokens import tokens_router
from app.web.api.watch import ReplicaWatch
from app.web.auth.authenticator import authenticator_from_settings
from app.web.auth.tokens import tokens_from_settings

API_PREFIX = "/api/v1"
_DESCRIPTION = """Model Depot's HTTP API: the shared list of models, their downloads and lifecycle, the event
log and live events. Send a personal token as `Authorization: Bearer mdp_…` (sign-in on: the page's cookie works
too); with sign-in off everyone is an admin. Errors are `{"error": {"code", "message"}}`."""
_ERRORS = {status: {"model": Error, "description": what} for status, what in (
    (400, "invalid_input"), (401, "unauthorized"), (403, "forbidden"), (404, "not_found"), (409, "conflict"),
    (413, "too_large"), (415, "unsupported_media_type"), (429, "too_many_requests"), (503, "unavailable"))}


def build_api(controller: Controller, settings: Settings) -> FastAPI:
    """The API app of one UI worker, on its controller and the sign-in settings of the page.

    Raises:
        ConfigError: the auth settings cannot be used.
    """
    api = FastAPI(title="Model Depot API", version="1", description=_DESCRIPTION, openapi_url="/openapi.json",
                  docs_url="/docs", redoc_url=None, responses=_ERRORS,  # type: ignore[arg-type]
                  redirect_slashes=False)
    tokens = tokens_from_settings(settings, controller.brief_redis)
    api.state.callers = Callers(authenticator_from_settings(settings, controller.brief_redis), tokens)
    watch = ReplicaWatch(controller.replica)
    api.include_router(models_router(controller, watch))
    api.include_router(system_router(controller))
    api.include_router(tokens_router(tokens))
    add_error_handlers(api)
    api.add_middleware(BodyLimits)
    origins = settings.cors_origin_list
    if origins:
        api.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Last-Event-ID"], max_age=600)
    api.add_middleware(CatchAll)
    return api


class _AnyPathMount(Mount):
    """A mount that takes its prefix itself and every path under it. Starlette's mount takes neither ``/api/v1``
    nor a path with a newline (its ``.*`` stops there), which would go past the API to the page's catch-all and
    its error shape."""

    def __init__(self, path: str, app: FastAPI) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        root, path = scope.get("root_path", ""), scope.get("path", "")
        if scope["type"] == "http" and path.removeprefix(root) == self.path:
            match, child = super().matches({**scope, "path": scope["path"] + "/"})
            return match, {**child, "path": scope["path"] + "/"}
        return super().matches(scope)


def mount_api(app: FastAPI, controller: Controller, settings: Settings) -> None:
    """Mount the API at :data:`API_PREFIX`; call it before the page is mounted at ``/``, which catches every path.

    Raises:
        ConfigError: the auth settings cannot be used.
    """
    app.router.routes.append(_AnyPathMount(API_PREFIX, build_api(controller, settings)))
