"""The page's components (:func:`layout`) and the events between them (:func:`wire`).

Every event runs outside Gradio's queue and keeps nothing on the server between calls (see
:mod:`app.web.ui.live`), so any UI worker can answer any of them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from app.web.auth.tokens import tokens_from_settings
from app.web.ui.access import Access, async_ui_errors, ui_errors
from app.web.ui.actions import Actions
from app.web.ui.disk import DISK_CSS
from app.web.ui.live import LiveView
from app.web.ui.logs import LOGS_CSS
from app.web.ui.models_table import EXAMPLE_MODEL, ROW_CLICK_JS, SORTS, STATUS_FILTERS, TABLE_CSS, TableQuery
from app.web.ui.poll import POLL_JS, SHOWN_VIEW_ID, SYNC_ID
from app.web.ui.tokens import TokenPanel, TokenParts, token_panel, wire_tokens

F = TypeVar("F", bound=Callable[..., Any])

QUICK: dict[str, Any] = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}
"""Options of every page event: outside the queue (any worker answers), quiet, not part of the API."""
RAW: dict[str, Any] = {**QUICK, "preprocess": False, "postprocess": False}
"""For the hot events, whose inputs and outputs are plain strings: skip Gradio's per-value processing."""

STATUS_CSS = """
.md-ok { margin: .2em 0; color: #15803d; }
.md-fail { margin: .2em 0; color: #b91c1c; font-weight: 600; }
"""
BANNER_CSS = """
.md-stale-box { background: #fef3c7; color: #92400e; border: 1px solid #f59e0b; border-radius: 6px;
  padding: .5em .8em; font-weight: 600; }
"""


@dataclass
class Page:
    """The components of the page that events read or write."""

    user_box: gr.Markdown
    banner: gr.HTML
    repo: gr.Textbox
    revision: gr.Textbox
    include: gr.Textbox
    exclude: gr.Textbox
    download: gr.Button
    status: gr.HTML
    name_filter: gr.Textbox
    status_filter: gr.Dropdown
    sort: gr.Dropdown
    page: gr.Number
    table: gr.HTML
    selected: gr.Textbox
    cancel: gr.Button
    pause: gr.Button
    resume: gr.Button
    retry: gr.Button
    remove: gr.Button
    refresh: gr.Button
    update: gr.Button
    pin: gr.Button
    unpin: gr.Button
    check: gr.Button
    check_all: gr.Button
    confirm: gr.Group
    question: gr.Markdown
    confirm_yes: gr.Button
    confirm_no: gr.Button
    pending: gr.Textbox
    log_filter: gr.Textbox
    logs: gr.HTML
    disk: gr.HTML
    shown_view: gr.Textbox
    shown_logs: gr.Textbox
    logs_trigger: gr.Textbox
    sync: gr.Button
    tokens: TokenParts

    @property
    def query(self) -> list[Any]:
        return [self.name_filter, self.status_filter, self.sort, self.page]

    @property
    def writes(self) -> list[gr.Button]:
        return [self.download, self.cancel, self.pause, self.resume, self.retry, self.remove, self.confirm_yes,
                self.update, self.pin, self.unpin, self.check, self.check_all]


def _resolved(fn: F) -> F:
    """``fn`` with its type hints and signature worked out once, for the hot events.

    Gradio inspects both on every call (``helpers.special_args``); with postponed annotations that compiles
    every hint again, about 15% of a refresh.
    """
    fn.__annotations__ = typing.get_type_hints(fn)
    fn.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return fn


def _hidden() -> gr.Textbox:
    return gr.Textbox(visible=False)


def _poll_targets() -> tuple[gr.Textbox, gr.Textbox, gr.Textbox, gr.Button]:
    """shown_view, shown_logs, logs_trigger, sync. The poll's script reads the first and clicks the last, so
    both are in the page's DOM but not on screen."""
    shown_view = gr.Textbox(visible="hidden", elem_id=SHOWN_VIEW_ID)
    return shown_view, _hidden(), _hidden(), gr.Button(visible="hidden", elem_id=SYNC_ID)


def _header() -> tuple[gr.Markdown, gr.HTML]:
    with gr.Row(equal_height=True):
        gr.Markdown("# Model Depot\nThe team's shared Hugging Face models: one live list for everyone.")
        user_box = gr.Markdown(visible=False, elem_id="md-user")
    return user_box, gr.HTML("", elem_id="md-stale", css_template=BANNER_CSS, js_on_load=None)


def _download_form() -> tuple[gr.Textbox, gr.Textbox, gr.Textbox, gr.Textbox, gr.Button]:
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
        download = gr.Button("Download", variant="primary", elem_id="md-download")
    return repo, revision, include, exclude, download


def _lifecycle_buttons() -> tuple[gr.Button, gr.Button, gr.Button, gr.Button, gr.Button]:
    """update, pin, unpin, check (the selected model), check_all: the models on the volume."""
    with gr.Row(equal_height=True):
        update = gr.Button("Update", elem_id="md-update")
        pin = gr.Button("Pin", elem_id="md-pin")
        unpin = gr.Button("Unpin", elem_id="md-unpin")
        check = gr.Button("Check selected for updates", elem_id="md-check")
        check_all = gr.Button("Check all for updates", elem_id="md-check-all")
    return update, pin, unpin, check, check_all


def layout() -> Page:
    """Create the page's components in the current ``gr.Blocks``."""
    user_box, banner = _header()
    tokens = token_panel()
    repo, revision, include, exclude, download = _download_form()
    status = gr.HTML("", elem_id="md-action-status", css_template=STATUS_CSS, js_on_load=None)
    with gr.Row():
        name_filter = gr.Textbox(label="Filter by name", elem_id="md-filter", scale=2,
                                 placeholder="part of a name, e.g. qwen")
        status_filter = gr.Dropdown(list(STATUS_FILTERS), value="all", label="Show", elem_id="md-status-filter")
        sort = gr.Dropdown(list(SORTS), value="name", label="Sort by", elem_id="md-sort")
        page = gr.Number(1, label="Page", precision=0, minimum=1, elem_id="md-page")
    table = gr.HTML("", elem_id="md-table", css_template=TABLE_CSS, js_on_load=ROW_CLICK_JS)
    with gr.Row(equal_height=True):
        selected = gr.Textbox(label="Selected model", elem_id="md-select", scale=2,
                              placeholder="click a row in the table, or type org/name")
        cancel = gr.Button("Cancel download", elem_id="md-cancel")
        pause = gr.Button("Pause", elem_id="md-pause")
        resume = gr.Button("Resume", elem_id="md-resume")
        retry = gr.Button("Retry", elem_id="md-retry")
        remove = gr.Button("Remove…", variant="stop", elem_id="md-remove")
        refresh = gr.Button("Refresh", elem_id="md-refresh")
    update, pin, unpin, check, check_all = _lifecycle_buttons()
    with gr.Group(visible=False, elem_id="md-confirm") as confirm:
        question = gr.Markdown(elem_id="md-confirm-text")
        with gr.Row():
            confirm_yes = gr.Button("Yes, remove it", variant="stop", elem_id="md-confirm-yes")
            confirm_no = gr.Button("Keep it", elem_id="md-confirm-no")
    pending = _hidden()
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown("### Event log (newest first)")
            log_filter = gr.Textbox(label="Filter the log", elem_id="md-log-filter",
                                    placeholder="a name, a user or a word, e.g. failed")
            logs = gr.HTML("", elem_id="md-logs", css_template=LOGS_CSS, js_on_load=None)
        with gr.Column(scale=1):
            gr.Markdown("### Disk")
            disk = gr.HTML("", elem_id="md-disk", css_template=DISK_CSS, js_on_load=None)
    return Page(user_box, banner, repo, revision, include, exclude, download, status, name_filter,
                status_filter, sort, page, table, selected, cancel, pause, resume, retry, remove, refresh, update,
                pin, unpin, check, check_all, confirm, question, confirm_yes, confirm_no, pending, log_filter, logs,
                disk, *_poll_targets(), tokens=tokens)


# ---- events --------------------------------------------------------------------------------------------


def wire(demo: gr.Blocks, page: Page, live: LiveView, actions: Actions, access: Access) -> None:
    """Register every event of the page."""
    view_out = [page.banner, page.table, page.disk, page.shown_view]
    logs_out = [page.logs, page.shown_logs]

    # Coroutines: CPU-bound and short (renderings are shared per state version), so running them on the
    # event loop beats a thread hop per call.
    @_resolved
    @async_ui_errors
    async def view(text: str | None, status: str | None, sort: str | None, number: float | None) -> tuple[str, ...]:
        return live.view(TableQuery.of(text, status, sort, number))

    @_resolved
    @async_ui_errors
    async def sync(text: str | None, status: str | None, sort: str | None, number: float | None,
                   shown_logs: str | None, logs_trigger: str | None) -> tuple[str, ...]:
        return live.sync(TableQuery.of(text, status, sort, number), shown_logs, logs_trigger)

    @_resolved
    @async_ui_errors
    async def logs(text: str | None, shown_view: str | None) -> tuple[str, str]:
        await live.caught_up(shown_view)
        return live.logs(text)

    logs_in = [page.log_filter, page.shown_view]
    page.sync.click(sync, [*page.query, page.shown_logs, page.logs_trigger], [*view_out, page.logs_trigger], **RAW)
    page.logs_trigger.change(logs, logs_in, logs_out, **RAW)
    for control in page.query:
        control.change(view, page.query, view_out, trigger_mode="always_last", **RAW)
    page.log_filter.change(logs, logs_in, logs_out, trigger_mode="always_last", **RAW)
    page.refresh.click(view, page.query, view_out, **RAW).then(logs, logs_in, logs_out, **RAW)
    page.table.click(_picked, None, page.selected, **QUICK)
    _wire_load(demo, page, live, access, view_out + logs_out)
    _wire_actions(page, actions, lambda event: event.then(view, page.query, view_out, **RAW))
    controller = actions.controller
    tokens = tokens_from_settings(controller.settings, controller.brief_redis)
    wire_tokens(page.tokens, TokenPanel(tokens, access), QUICK)


def _picked(evt: gr.EventData) -> Any:
    data = getattr(evt, "_data", None)
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else gr.skip()


def _wire_load(demo: gr.Blocks, page: Page, live: LiveView, access: Access, outputs: list[Any]) -> None:
    @ui_errors
    def on_load(text: str | None, status: str | None, sort: str | None, number: float | None,
                log_text: str | None, request: gr.Request) -> tuple[Any, ...]:
        user = access.user(request)
        who = gr.update(visible=access.enabled,
                        value=f"Signed in as **{user.name}** ({user.role.value}) · [Sign out](/logout)")
        allowed = gr.update(interactive=user.is_admin)
        return (*live.view(TableQuery.of(text, status, sort, number)), *live.logs(log_text), who,
                gr.update(visible=access.enabled), *(allowed for _ in page.writes))

    demo.load(on_load, [*page.query, page.log_filter], [*outputs, page.user_box, page.tokens.box, *page.writes],
              **QUICK)
    demo.load(None, js=POLL_JS)


def _wire_actions(page: Page, actions: Actions, then_refresh: Any) -> None:
    form = [page.repo, page.revision, page.include, page.exclude]
    then_refresh(page.download.click(actions.download, form, page.status, **QUICK))
    then_refresh(page.repo.submit(actions.download, form, page.status, **QUICK))
    then_refresh(page.cancel.click(actions.cancel, page.selected, page.status, **QUICK))
    then_refresh(page.pause.click(actions.pause, page.selected, page.status, **QUICK))
    then_refresh(page.resume.click(actions.resume, page.selected, page.status, **QUICK))
    then_refresh(page.retry.click(actions.retry, page.selected, page.status, **QUICK))
    page.remove.click(actions.ask_remove, page.selected, [page.status, page.confirm, page.question, page.pending],
                      **QUICK)
    then_refresh(page.confirm_yes.click(actions.remove, page.pending, [page.status, page.confirm], **QUICK))
    page.confirm_no.click(lambda: gr.update(visible=False), None, page.confirm, **QUICK)
    then_refresh(page.update.click(actions.update, page.selected, page.status, **QUICK))
    then_refresh(page.pin.click(actions.pin, page.selected, page.status, **QUICK))
    then_refresh(page.unpin.click(actions.unpin, page.selected, page.status, **QUICK))
    then_refresh(page.check.click(actions.check_selected, page.selected, page.status, **QUICK))
    then_refresh(page.check_all.click(actions.check_all, None, page.status, **QUICK))
