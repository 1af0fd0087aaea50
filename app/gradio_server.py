"""The Model Depot web page: :func:`build_ui` (the Gradio Blocks) and :func:`create_app` (the FastAPI app).

Every event is answered outside Gradio's queue and keeps no per-session state on the server (the page sends
what it shows, see :mod:`app.ui.live`), so any UI worker can answer any request: the page works behind a
plain round-robin balancer. ``gradio_client`` still talks through the queue (join + event stream), which
the balancer keeps on one worker per session (``deploy/haproxy.cfg``).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from app.auth import Authenticator, authenticator_from_settings
from app.controller import Controller
from app.errors import ModelDepotError
from app.settings import Settings
from app.ui.access import Access, ui_errors
from app.ui.actions import Actions
from app.ui.api import register_api
from app.ui.disk import DISK_CSS
from app.ui.live import LiveView
from app.ui.login import LoginRedirect, add_login_routes
from app.ui.logs import LOGS_CSS
from app.ui.models_table import EXAMPLE_MODEL, ROW_CLICK_JS, SORTS, STATUS_FILTERS, TABLE_CSS, TableQuery

TICK_SECONDS = 0.5
STATUS_CSS = """
.md-ok { margin: .2em 0; color: #15803d; }
.md-fail { margin: .2em 0; color: #b91c1c; font-weight: 600; }
"""
_QUICK: dict[str, Any] = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}
"""Options of every page event: outside the queue (any worker answers), quiet, not part of the API."""


def build_ui(controller: Controller, *, auth: Authenticator | None = None) -> gr.Blocks:
    """The page: download form, live models table, actions, event log, disk panel, and the API endpoints."""
    access = Access(auth)
    live = LiveView(controller)
    actions = Actions(controller, access)
    demo: gr.Blocks
    with gr.Blocks(title="Model Depot", analytics_enabled=False) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown("# Model Depot\nThe team's shared Hugging Face models: one live list for everyone.")
            user_box = gr.Markdown(visible=False, elem_id="md-user")
        banner = gr.HTML(visible=False, elem_id="md-stale", js_on_load=None)
        with gr.Accordion("Download a model", open=True):
            with gr.Row():
                repo = gr.Textbox(label="Model", elem_id="md-repo", scale=2,
                                  placeholder=f"org/name or org/name@revision, e.g. {EXAMPLE_MODEL}")
                revision = gr.Textbox(label="Revision (optional)", elem_id="md-revision",
                                      placeholder="main, a tag like v1.0, or a 40-character commit id")
            with gr.Row():
                include = gr.Textbox(label="Only files matching (optional)", elem_id="md-include", lines=2,
                                     placeholder="comma or newline separated, e.g. *.safetensors, *.json")
                exclude = gr.Textbox(label="Skip files matching (optional)", elem_id="md-exclude", lines=2,
                                     placeholder="e.g. *.bin, *.pth, onnx/*")
            download_btn = gr.Button("Download", variant="primary", elem_id="md-download")
        status = gr.HTML(elem_id="md-action-status", css_template=STATUS_CSS, js_on_load=None)
        with gr.Row():
            filter_text = gr.Textbox(label="Filter by name", elem_id="md-filter", scale=2,
                                     placeholder="part of a name, e.g. qwen")
            status_filter = gr.Dropdown(list(STATUS_FILTERS), value="all", label="Status",
                                        elem_id="md-status-filter")
            sort = gr.Dropdown(list(SORTS), value="name", label="Sort by", elem_id="md-sort")
            page = gr.Number(1, label="Page", precision=0, minimum=1, elem_id="md-page")
        table = gr.HTML(elem_id="md-table", css_template=TABLE_CSS, js_on_load=ROW_CLICK_JS)
        with gr.Row(equal_height=True):
            select = gr.Dropdown(choices=[], value=None, label="Selected model (click a row)", scale=2,
                                 allow_custom_value=True, elem_id="md-select")
            cancel_btn = gr.Button("Cancel download", elem_id="md-cancel")
            retry_btn = gr.Button("Retry", elem_id="md-retry")
            remove_btn = gr.Button("Remove…", variant="stop", elem_id="md-remove")
            refresh_btn = gr.Button("Refresh", elem_id="md-refresh")
        with gr.Group(visible=False, elem_id="md-confirm") as confirm:
            question = gr.Markdown(elem_id="md-confirm-text")
            with gr.Row():
                confirm_btn = gr.Button("Yes, remove it", variant="stop", elem_id="md-confirm-yes")
                keep_btn = gr.Button("Keep it", elem_id="md-confirm-no")
        pending = gr.Textbox(visible=False)
        with gr.Row():
            with gr.Column(scale=3):
                gr.Markdown("### Event log (newest first)")
                log_filter = gr.Textbox(label="Filter the log", elem_id="md-log-filter",
                                        placeholder="a name, a user or a word, e.g. failed")
                logs = gr.HTML(elem_id="md-logs", css_template=LOGS_CSS, js_on_load=None)
            with gr.Column(scale=1):
                gr.Markdown("### Disk")
                disk = gr.HTML(elem_id="md-disk", css_template=DISK_CSS, js_on_load=None)
        seen = gr.Textbox(visible=False, elem_id="md-seen")
        timer = gr.Timer(TICK_SECONDS)

        view = [filter_text, status_filter, sort, page, log_filter]
        outputs = [banner, table, logs, disk, select, seen]
        buttons = [download_btn, cancel_btn, retry_btn, remove_btn, confirm_btn]

        @ui_errors
        def tick(seen_raw: str | None, text: str | None, status_: str | None, sort_: str | None,
                 page_: float | None, log_text: str | None) -> tuple[Any, ...]:
            return live.refresh(seen_raw, TableQuery.of(text, status_, sort_, page_), log_text)

        @ui_errors
        def reload(text: str | None, status_: str | None, sort_: str | None, page_: float | None,
                   log_text: str | None) -> tuple[Any, ...]:
            return live.refresh(None, TableQuery.of(text, status_, sort_, page_), log_text, force=True)

        @ui_errors
        def on_load(text: str | None, status_: str | None, sort_: str | None, page_: float | None,
                    log_text: str | None, request: gr.Request) -> tuple[Any, ...]:
            user = access.user(request)
            who = gr.update(visible=access.enabled,
                            value=f"Signed in as **{user.name}** ({user.role.value}) · [Sign out](/logout)")
            allowed = gr.update(interactive=user.is_admin)
            return (*reload(text, status_, sort_, page_, log_text), who, *(allowed for _ in buttons))

        def table_only(text: str | None, status_: str | None, sort_: str | None, page_: float | None) -> str:
            return live.table(TableQuery.of(text, status_, sort_, page_))

        def pick(evt: gr.EventData) -> Any:
            data = getattr(evt, "_data", None)
            name = data.get("name") if isinstance(data, dict) else None
            return gr.update(value=name) if name else gr.skip()

        demo.load(on_load, view, [*outputs, user_box, *buttons], **_QUICK)
        timer.tick(tick, [seen, *view], outputs, **_QUICK)
        refresh_btn.click(reload, view, outputs, **_QUICK)
        for control in (filter_text, status_filter, sort, page):
            control.change(table_only, view[:4], table, trigger_mode="always_last", **_QUICK)
        log_filter.change(live.logs, log_filter, logs, trigger_mode="always_last", **_QUICK)
        table.click(pick, None, select, **_QUICK)

        def then_refresh(event: Any) -> None:
            event.then(tick, [seen, *view], outputs, **_QUICK)

        form = [repo, revision, include, exclude]
        then_refresh(download_btn.click(actions.download, form, status, **_QUICK))
        then_refresh(repo.submit(actions.download, form, status, **_QUICK))
        then_refresh(cancel_btn.click(actions.cancel, select, status, **_QUICK))
        then_refresh(retry_btn.click(actions.retry, select, status, **_QUICK))
        remove_btn.click(actions.ask_remove, select, [status, confirm, question, pending], **_QUICK)
        then_refresh(confirm_btn.click(actions.remove, pending, [status, confirm], **_QUICK))
        keep_btn.click(lambda: gr.update(visible=False), None, confirm, **_QUICK)

        register_api(controller, access)
    demo.queue(default_concurrency_limit=None)
    return demo


def _gradio_user(auth: Authenticator) -> Any:
    """Gradio's ``auth_dependency``: the signed-in user's name, or None (Gradio then answers 401)."""

    async def username(request: Request) -> str | None:
        try:
            user = await run_in_threadpool(auth.user_for, request)
        except ModelDepotError:
            return None
        return user.name if user is not None else None

    return username


def mount(app: FastAPI, controller: Controller, settings: Settings | None = None) -> FastAPI:
    """Add the sign-in routes (when auth is on) and the page at ``/`` to ``app``; returns ``app``.

    The page is mounted at ``/`` and so catches every path: add other routes (``/metrics``,
    ``/healthz``...) to ``app`` *before* calling this.

    Raises:
        ConfigError: the auth settings cannot be used (e.g. the users file is missing).
    """
    settings = settings or controller.settings
    auth = authenticator_from_settings(settings, controller.redis)
    if auth is not None:
        add_login_routes(app, auth, session_ttl=settings.session_ttl)
        app.add_middleware(LoginRedirect, auth=auth)
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
