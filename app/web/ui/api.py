"""The stable HTTP/gradio_client API: ``/fetch_models``, ``/get_model``, ``/get_logs``, ``/download_model``,
``/remove_model``, ``/cancel_download``, ``/pause_download``, ``/resume_download``, ``/retry_download``, and for the
models on the volume ``/check_updates``, ``/update_model``, ``/pin_model``, ``/unpin_model``, ``/prune``.
Reads need a signed-in user (anyone when auth is off); everything else is for admins.

Each is a ``gr.api`` endpoint outside the queue, so besides ``gradio_client`` a single
``POST /gradio_api/run/<name>`` with ``{"data": [...]}`` answers it, on any UI worker.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio.events import api as gr_api

from app.core.controller import Controller, Outcome, Pruned
from app.core.records import RecordView
from app.web.ui.access import Access, ui_errors
from app.web.ui.disk import prune_message
from app.web.ui.format import split_patterns


def _outcome(outcome: Outcome) -> dict[str, Any]:
    return dataclasses.asdict(outcome)


def _pruned(pruned: Pruned) -> dict[str, Any]:
    return {**dataclasses.asdict(pruned), "message": prune_message(pruned)}


def _endpoint(fn: Callable[..., Any], name: str) -> None:
    """Register ``fn`` as ``/name``, with its real (not stringified) type hints for the API page."""
    fn.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    gr_api(fn, api_name=name, queue=False, concurrency_limit=None, api_description=inspect.getdoc(fn))


def register_api(controller: Controller, access: Access) -> None:
    """Add the API endpoints to the Blocks being built (call inside ``with gr.Blocks()``)."""

    @ui_errors
    def fetch_models(request: gr.Request) -> list[RecordView]:
        """Every model record (name, repo_id, revision, commit, status, bytes_done, bytes_total, speed_bps,
        eta_s, size_bytes, error, requested_by, requested_at, pinned, last_used_at, latest_commit,
        update_available, checked_at, check_error, update_from, update_error, ...), sorted by name."""
        access.user(request)
        return controller.fetch_models()

    @ui_errors
    def get_model(model_name: str, request: gr.Request) -> RecordView:
        """One model record by name (org/name or org/name@revision)."""
        access.user(request)
        return controller.get_model(model_name)

    @ui_errors
    def get_logs(request: gr.Request) -> list[str]:
        """The shared event log, oldest line first."""
        access.user(request)
        return controller.get_logs()

    @ui_errors
    def download_model(model_name: str, revision: str | None = None, include: str | list[str] | None = None,
                       exclude: str | list[str] | None = None, request: gr.Request | None = None) -> dict[str, Any]:
        """Queue a download of org/name (or org/name@revision). include/exclude: glob patterns, comma or
        newline separated, e.g. "*.safetensors, *.json". Admins only."""
        who = access.admin(request, "download models")
        return _outcome(controller.download_model(model_name, revision or None, split_patterns(include),
                                                  split_patterns(exclude), requested_by=who))

    @ui_errors
    def remove_model(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Delete a model's files and drop it from the list (cancels its download first). Admins only."""
        who = access.admin(request, "remove models")
        return _outcome(controller.remove_model(model_name, requested_by=who))

    @ui_errors
    def cancel_download(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Cancel a queued, running or paused download; its partial files are deleted. Admins only."""
        who = access.admin(request, "cancel downloads")
        return _outcome(controller.cancel_download(model_name, requested_by=who))

    @ui_errors
    def pause_download(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Pause a queued or running download; its partial files stay on the volume. Admins only."""
        who = access.admin(request, "pause downloads")
        return _outcome(controller.pause_download(model_name, requested_by=who))

    @ui_errors
    def resume_download(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Queue a paused download again; it goes on from the files already downloaded. Admins only."""
        who = access.admin(request, "resume downloads")
        return _outcome(controller.resume_download(model_name, requested_by=who))

    @ui_errors
    def retry_download(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Queue a failed or cancelled download again with the same parameters. Admins only."""
        who = access.admin(request, "retry downloads")
        return _outcome(controller.retry_download(model_name, requested_by=who))

    endpoints: list[Callable[..., Any]] = [fetch_models, get_model, get_logs, download_model, remove_model,
                                           cancel_download, pause_download, resume_download, retry_download]
    for fn in [*endpoints, *_lifecycle_api(controller, access)]:
        _endpoint(fn, fn.__name__)


def _lifecycle_api(controller: Controller, access: Access) -> tuple[Callable[..., Any], ...]:
    """The endpoints of the models on the volume: update checks, updates, pins and prune (admins only)."""

    @ui_errors
    def check_updates(model_name: str | None = None, request: gr.Request | None = None) -> dict[str, Any]:
        """Ask the Hub (as a job) for the newest commit of a model's branch; empty: every ready model that follows
        a branch. The records show the result (latest_commit, update_available, check_error). Admins only."""
        who = access.admin(request, "check for updates")
        name = model_name.strip() if model_name and model_name.strip() else None
        return _outcome(controller.check_updates(name, requested_by=who))

    @ui_errors
    def update_model(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Download the newest commit of a ready model's branch; it stays usable at its old commit until the new
        one is verified, and the old revision's unshared files are deleted after. Admins only."""
        who = access.admin(request, "update models")
        return _outcome(controller.update_model(model_name, requested_by=who))

    @ui_errors
    def pin_model(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Pin a model: quota eviction and prune never remove it. Admins only."""
        who = access.admin(request, "pin models")
        return _outcome(controller.pin_model(model_name, requested_by=who))

    @ui_errors
    def unpin_model(model_name: str, request: gr.Request) -> dict[str, Any]:
        """Unpin a model: eviction may remove it again once it is idle. Admins only."""
        who = access.admin(request, "unpin models")
        return _outcome(controller.unpin_model(model_name, requested_by=who))

    @ui_errors
    def prune(dry_run: bool = False, request: gr.Request | None = None) -> dict[str, Any]:
        """Remove the least recently used unpinned idle models until the models fit the quota and the volume is
        under the low watermark (dry_run: only say which); returns the plan, the models being removed and a
        message. Needs the models volume mounted on the UI worker. Admins only."""
        who = access.admin(request, "prune models")
        return _pruned(controller.prune(dry_run=bool(dry_run), requested_by=who))

    return check_updates, update_model, pin_model, unpin_model, prune
