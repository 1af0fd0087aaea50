"""The ASGI app of one UI worker: ops endpoints (/metrics, /healthz, /readyz), the HTTP API (/api/v1), then
sign-in and the UI.

Ops routes and the API are added before the UI is mounted at ``/``, so they win over Gradio's catch-all; the
sign-in routes and the page come from :func:`app.web.gradio_ui.mount`, which adds them to this app.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import redis
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.core.errors import ModelDepotError
from app.core.replication import ReplicationInfo
from app.core.settings import Settings
from app.web.api.application import mount_api
from app.web.gradio_ui import mount
from app.web.metrics import build_registry

if TYPE_CHECKING:
    from app.core.controller import Controller


def create_app(controller: Controller, settings: Settings) -> FastAPI:
    """The app `modeldepot serve` runs: ops routes first, the API at ``/api/v1``, then sign-in routes and the UI
    at ``/``.

    Raises:
        ConfigError: the auth settings cannot be used (raised by the UI's sign-in setup).
    """
    app = FastAPI(title="Model Depot", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(ops_router(controller, build_registry(controller)))
    mount_api(app, controller, settings)
    return mount(app, controller, settings)


def ops_router(controller: Controller, registry: CollectorRegistry) -> APIRouter:
    """/healthz (the process answers), /readyz (Redis answers and the replica is in sync), /metrics."""
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:  # async: answered by the event loop even when the threadpool is busy
        return {"ok": True}

    @router.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        reason = not_ready_reason(controller)
        if reason is not None:
            return JSONResponse({"ready": False, "reason": reason}, status_code=503)
        return JSONResponse({"ready": True, "version": controller.version, **replication_summary(controller)})

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def replication_summary(controller: Controller) -> dict[str, Any]:
    """``{"primary": "host:port", "replicas": [{"address", "state", "lag_s", "behind_bytes"}]}``, or nothing when
    Redis stopped answering since the readiness check."""
    try:
        replication = ReplicationInfo.read(controller.brief_redis)
    except redis.RedisError:
        return {}
    return {"primary": replication.primary, "via": replication.via,
            "replicas": [asdict(replica) for replica in replication.replicas]}


def not_ready_reason(controller: Controller) -> str | None:
    """Why this UI worker should get no traffic now, or None when it is ready."""
    try:
        controller.brief_store.ping()
    except (redis.RedisError, ModelDepotError, OSError) as e:
        return f"Redis is unreachable ({type(e).__name__}); check redis-server and MODELDEPOT_REDIS_URL"
    if not controller.in_sync:
        return (
            f"the replica is not in sync with Redis yet (version {controller.version}, "
            f"{controller.version_lag} behind); it resyncs by itself within seconds"
        )
    return None
