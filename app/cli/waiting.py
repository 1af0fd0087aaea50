"""`--wait`: a download's progress on the terminal until it ends, and a warning when no worker would run the job."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from app.cli.errors import fail
from app.cli.options import say
from app.core.records import RecordView

if TYPE_CHECKING:
    from app.core.controller import Controller


def wait_for_download(controller: Controller, name: str, timeout: float | None,
                      report: Callable[[str, RecordView | None], None]) -> None:
    """Show a download's progress until it ends, then ``report`` how it ended."""
    from app.cli.follow import WaitTimeout, follow_model
    from app.cli.output import DownloadView

    warn_without_workers(controller, "downloads", "the download starts")
    try:
        with DownloadView(Console(highlight=False)) as view:
            record = follow_model(controller, name, view.update, timeout=timeout)
    except WaitTimeout as e:
        status = e.record["status"] if e.record else "gone"
        fail(
            f"{name} is still {status} after {timeout:g}s; it goes on in the background "
            f"(watch it with `modeldepot ls`)."
        )
    except KeyboardInterrupt:
        # Ctrl-C ends the wait, not the download: a normal end (exit 0) that says where the download is
        say(f"stopped waiting; {name} goes on in the background. Cancel it with `modeldepot cancel {name}`.")
        return
    report(name, record)


def warn_without_workers(controller: Controller, kind: str, what: str) -> None:
    """A warning on stderr when no live worker listens on the ``downloads`` or ``maintenance`` queue."""
    from app.core.status import list_workers, live_workers

    queue = controller.jobs.downloads if kind == "downloads" else controller.jobs.maintenance
    if not live_workers(list_workers(controller.jobs), queue.name):
        typer.echo(f"warning: no live worker on the {kind} queue; {what} once one runs (`modeldepot worker`).",
                   err=True)

