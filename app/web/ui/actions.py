"""The page's write actions: download, remove (after a confirmation), cancel, pause, resume, retry; and for models
on the volume: check for updates (the selected one or all), update, pin, unpin.

Each callback checks the caller's role, calls the controller and returns a sentence for the status line.
They keep nothing between calls, so any UI worker can answer any of them.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from app.core.controller import Controller, Outcome
from app.core.errors import InvalidInputError
from app.core.records import RecordView, Status, disk_bytes
from app.core.units import human_bytes
from app.web.ui.access import Access, inline_errors, notice
from app.web.ui.format import split_patterns

NO_SELECTION = "Pick a model first: click its row in the table, or type its name (org/name)."


def _selected(name: str | None) -> str:
    if not name or not name.strip():
        raise InvalidInputError(NO_SELECTION)
    return name.strip()


def _said(outcome: Outcome) -> str:
    return notice(outcome.message)


def removal_question(record: RecordView) -> str:
    """The confirmation text, stating how many bytes the removal frees."""
    name = html.escape(str(record.get("name")))
    size = disk_bytes(record)
    if record.get("status") in (Status.QUEUED, Status.DOWNLOADING):
        freed = f"cancels its download and deletes the {human_bytes(size)} downloaded so far"
    elif record.get("status") == Status.PAUSED:
        freed = f"deletes the {human_bytes(size)} its paused download kept"
    elif size:
        freed = f"deletes its files and frees {human_bytes(size)} on the models volume"
    else:
        freed = "deletes whatever files it has on the models volume"
    return f"**Remove {name}?** This {freed}. Other users will see it disappear."


class Actions:
    """Callbacks of the action buttons, bound to one controller and access policy.

    No method is named like an API endpoint (:mod:`app.web.ui.api`): Gradio names every event after its function,
    private or not, and a clash renames the endpoint (``/check_updates_1``).
    """

    def __init__(self, controller: Controller, access: Access) -> None:
        self.controller = controller
        self.access = access

    @inline_errors()
    def download(self, repo: str | None, revision: str | None, include: str | None, exclude: str | None,
                 request: gr.Request) -> str:
        who = self.access.admin(request, "download models")
        if not repo or not repo.strip():
            raise InvalidInputError("Type a model name first, e.g. Qwen/Qwen2.5-0.5B-Instruct.")
        outcome = self.controller.download_model(repo, revision or None, split_patterns(include),
                                                 split_patterns(exclude), requested_by=who)
        return _said(outcome)

    @inline_errors(extra_outputs=3)
    def ask_remove(self, name: str | None, request: gr.Request) -> tuple[str, Any, str, str]:
        """Open the confirmation box (nothing is removed yet)."""
        self.access.admin(request, "remove models")
        record = self.controller.get_model(_selected(name))
        return "", gr.update(visible=True), removal_question(record), str(record["name"])

    @inline_errors(extra_outputs=1)
    def remove(self, pending: str | None, request: gr.Request) -> tuple[str, Any]:
        who = self.access.admin(request, "remove models")
        outcome = self.controller.remove_model(_selected(pending), requested_by=who)
        return _said(outcome), gr.update(visible=False)

    @inline_errors()
    def cancel(self, name: str | None, request: gr.Request) -> str:
        who = self.access.admin(request, "cancel downloads")
        return _said(self.controller.cancel_download(_selected(name), requested_by=who))

    @inline_errors()
    def pause(self, name: str | None, request: gr.Request) -> str:
        who = self.access.admin(request, "pause downloads")
        return _said(self.controller.pause_download(_selected(name), requested_by=who))

    @inline_errors()
    def resume(self, name: str | None, request: gr.Request) -> str:
        who = self.access.admin(request, "resume downloads")
        return _said(self.controller.resume_download(_selected(name), requested_by=who))

    @inline_errors()
    def retry(self, name: str | None, request: gr.Request) -> str:
        who = self.access.admin(request, "retry downloads")
        return _said(self.controller.retry_download(_selected(name), requested_by=who))

    @inline_errors()
    def check_selected(self, name: str | None, request: gr.Request) -> str:
        """Check the selected model's branch for a newer commit (a maintenance job; the row shows the result)."""
        who = self.access.admin(request, "check for updates")
        return _said(self.controller.check_updates(_selected(name), requested_by=who))

    @inline_errors()
    def check_all(self, request: gr.Request) -> str:
        """Check every ready model that follows a branch."""
        who = self.access.admin(request, "check for updates")
        return _said(self.controller.check_updates(requested_by=who))

    @inline_errors()
    def update(self, name: str | None, request: gr.Request) -> str:
        who = self.access.admin(request, "update models")
        return _said(self.controller.update_model(_selected(name), requested_by=who))

    @inline_errors()
    def pin(self, name: str | None, request: gr.Request) -> str:
        who = self.access.admin(request, "pin models")
        return _said(self.controller.pin_model(_selected(name), requested_by=who))

    @inline_errors()
    def unpin(self, name: str | None, request: gr.Request) -> str:
        who = self.access.admin(request, "unpin models")
        return _said(self.controller.unpin_model(_selected(name), requested_by=who))
