"""`--wait`: a download's progress on the terminal until it ends, and a warning when no worker would run the job.

The two places where a depot over HTTP reads something else than a controller does: the download's progress
stream instead of the replica, and the server's health report instead of RQ's worker registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from app.cli.errors import fail
from app.cli.options import say
from app.core.records import RecordView

if TYPE_CHECKING:
    from app.cli.depot import Depot, Live
    from app.cli.remote import RemoteDepot


def wait_for_download(depot: Depot, name: str, timeout: float | None,
                      report: Callable[[str, RecordView | None], None]) -> None:
    """Show a download's progress until it ends, then ``report`` how it ended."""
    from app.cli.follow import WaitTimeout, follow_model
    from app.cli.output import DownloadView

    warn_without_workers(depot, "downloads", "the download starts")
    try:
        with watching(depot, name) as live, DownloadView(Console(highlight=False)) as view:
            record = follow_model(live, name, view.update, timeout=timeout)
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


@contextlib.contextmanager
def watching(depot: Depot, name: str) -> Iterator[Live]:
    """What following ``name`` reads: a controller's replica, or over HTTP the model's progress stream."""
    from app.core.controller import Controller  # loaded in either mode already; the HTTP client only in its own

    if isinstance(depot, Controller):
        yield depot
        return
    with _remote(depot).progress(name) as feed:
        yield feed


def warn_without_workers(depot: Depot, kind: str, what: str) -> None:
    """A warning on stderr when no live worker listens on the ``downloads`` or ``maintenance`` queue."""
    if not live_workers(depot, kind):
        typer.echo(f"warning: no live worker on the {kind} queue; {what} once one runs (`modeldepot worker`).",
                   err=True)


def live_workers(depot: Depot, kind: str) -> int:
    """How many live workers listen on the ``downloads`` or ``maintenance`` queue."""
    from app.core.controller import Controller

    if isinstance(depot, Controller):
        from app.core.status import list_workers, live_workers

        queue = depot.jobs.downloads if kind == "downloads" else depot.jobs.maintenance
        return live_workers(list_workers(depot.jobs), queue.name)
    return sum(q.workers_alive for q in _remote(depot).health().queues if q.kind == kind)


def _remote(depot: Depot) -> RemoteDepot:
    from app.cli.remote import RemoteDepot

    assert isinstance(depot, RemoteDepot), depot
    return depot
