"""The Model Depot web page: :func:`build_ui` (the Gradio Blocks) and :func:`create_app` (the FastAPI app).

Every event is answered outside Gradio's queue and keeps no per-session state on the server (the page sends
what it shows, see :mod:`app.web.ui.live`), and the page's 0.5 s poll is a bare route outside Gradio
(:mod:`app.web.ui.poll`), so any UI worker can answer any request: the page works behind a plain round-robin
balancer. ``gradio_client`` still talks through the queue (join + event stream), which
the balancer keeps on one worker per session (``deploy/haproxy.cfg``).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from app.core.controller import Controller
from app.core.errors import ModelDepotError
from app.core.settings import Settings
from app.web.auth.authenticator import Authenticator, authenticator_from_settings
from app.web.ui.access import Access
from app.web.ui.actions import Actions
from app.web.ui.api import register_api
from app.web.ui.live import LiveView
from app.web.ui.login import LoginRedirect, add_login_routes
from app.web.ui.page import layout, wire
from app.web.ui.poll import version_router


def _skip_missing_matplotlib() -> None:
    """Make ``import matplotlib`` fail at once when it is not installed.

    Gradio tries that import twice around every event (``utils.MatplotlibBackendMananger``); each failed try
    searches all of ``sys.path`` again, about 12% of a page refresh.
    """
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]


def build_ui(controller: Controller, *, auth: Authenticator | None = None) -> gr.Blocks:
    """The page (download form, live models table, actions, event log, disk panel) and the API endpoints."""
    _skip_missing_matplotlib()
    access = Access(auth)
    demo: gr.Blocks
    with gr.Blocks(title="Model Depot", analytics_enabled=False) as demo:
        wire(demo, layout(), LiveView(controller), Actions(controller, access), access)
        register_api(controller, access)
    demo.queue(default_concurrency_limit=None)
    return demo


def _gradio_user(auth: Authenticator) -> Any:
    """Gradio's ``auth_dependency``: the signed-in user's name, or None (Gradio then answers 401)."""

    async def username(request: Request) -> str | None:
        known, user = auth.peek(request)  # every event of every page comes here: no thread, no Redis
        if not known:
            try:
                user = await run_in_threadpool(auth.user_for, request)
            except ModelDepotError:
                return None
        return user.name if user is not None else None

    return username


def mount(app: FastAPI, controller: Controller, settings: Settings | None = None) -> FastAPI:
    """Add the sign-in routes (when auth is on), the poll's ``/api/state-version`` and the page at ``/`` to
    ``app``; returns ``app``.

    The page is mounted at ``/`` and so catches every path: add other routes (``/metrics``,
    ``/healthz``...) to ``app`` *before* calling this.

    Raises:
        ConfigError: the auth settings cannot be used (e.g. the users file is missing).
    """
    settings = settings or controller.settings
    auth = authenticator_from_settings(settings, controller.brief_redis)
    if auth is not None:
        add_login_routes(app, auth, session_ttl=settings.session_ttl)
        app.add_middleware(LoginRedirect, auth=auth)
    app.include_router(version_router(controller))
    blocks = build_ui(controller, auth=auth)
    mounted: FastAPI = gr.mount_gradio_app(
        app, blocks, path="/", auth_dependency=_gradio_user(auth) if auth else None, run_history=False,
        footer_links=["api"], ssr_mode=False, show_error=True)
    return mounted


def create_app(controller: Controller, settings: Settings | None = None) -> FastAPI:
    """A FastAPI app with only the page (and sign-in routes): see :func:`mount` to add it to yours.

    Raises:
        ConfigError: the auth settings cannot be used.
    """
    app = FastAPI(title="Model Depot", docs_url=None, redoc_url=None, openapi_url=None)
    return mount(app, controller, settings)
