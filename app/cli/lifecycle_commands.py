"""The lifecycle on disk from the command line: `outdated`, `update`, `pin`, `unpin`, `prune`.

Registered on the main `cli` by app/cli/main.py, which gives each its examples and its place in `--help`.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from app.cli.errors import fail
from app.cli.options import ModelArg, TimeoutOption, WaitOption, say
from app.cli.session import current_user, open_controller
from app.cli.waiting import wait_for_download, warn_without_workers
from app.core.records import ModelRecord, RecordView, Status

if TYPE_CHECKING:
    from app.cli.depot import Depot


def outdated(
    check: Annotated[
        bool, typer.Option("--check", help="Ask the Hub first (a maintenance job) and wait for every answer.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0, help="With --check: how long to wait for the answers (s).")] = 120,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON (for scripts).")] = False,
) -> None:
    """List the ready models that follow a branch: their commit, the branch's newest commit, when it was checked.

    Exits 0 whether or not updates exist (1 only when --check could not finish); take one with `modeldepot update`.
    """
    from app.cli.output import outdated_summary, outdated_table

    with open_controller(listen=check) as controller:
        pending = check_now(controller, timeout, err=as_json) if check else []
        records = followed(controller.fetch_models())
    if as_json:
        say(json.dumps(records, indent=2))
    elif not records:
        say("No ready model follows a branch: there is nothing to update.")
    else:
        Console(highlight=False).print(outdated_table(records))
        say(outdated_summary(records))
    if pending:
        fail(f"the update check did not answer for {len(pending)} models within {timeout:g}s "
             f"({', '.join(pending[:3])}{'…' if len(pending) > 3 else ''}); it goes on in the background. "
             "Is a maintenance worker running (`modeldepot status`)? Wait longer with --timeout.")


def followed(records: list[RecordView]) -> list[RecordView]:
    """The ready models whose branch may move on the Hub (what the update check looks at)."""
    return [r for r in records if r["status"] == Status.READY and ModelRecord.model_validate(r).follows_branch]


def check_now(controller: Depot, timeout: float, *, err: bool) -> list[str]:
    """Ask for an update check of every followed model and wait for the answers; the names still unanswered when
    ``timeout`` passed (none on Ctrl-C: the listing shows what arrived)."""
    from app.cli.follow import ChecksPending, wait_checked

    before = {r["name"]: r.get("checked_at") for r in followed(controller.fetch_models())}
    outcome = controller.check_updates(requested_by=current_user())
    typer.echo(outcome.message, err=err)
    if not outcome.changed:
        return []
    warn_without_workers(controller, "maintenance", "the check starts")
    try:
        wait_checked(controller, before, timeout=timeout)
    except ChecksPending as e:
        return e.names
    except KeyboardInterrupt:
        typer.echo("stopped waiting; the check goes on in the background.", err=True)
    return []


def update(model: ModelArg, wait: WaitOption = False, timeout: TimeoutOption = None) -> None:
    """Download the newest commit of a ready model's branch (only files that changed); it stays usable at its old
    commit until the new one is verified, and stays there if the update fails."""
    with open_controller(listen=wait) as controller:
        old = controller.get_model(model).get("commit") or ""
        outcome = controller.update_model(model, requested_by=current_user())
        say(outcome.message)
        if wait:
            wait_for_download(controller, outcome.name, timeout,
                              lambda name, record: report_updated(name, old, record))


def report_updated(name: str, old: str, record: RecordView | None) -> None:
    """How a followed update ended: the new commit, or the reason it fell back to ``old``."""
    from app.core.units import human_bytes

    if record is None:
        fail(f"{name} was removed before its update finished.")
    if record["status"] == Status.PAUSED:
        fail(f"the update of {name} is paused (it stays usable at {old[:7]}); resume it with "
             f"`modeldepot resume {name}`.")
    if record.get("update_error") or record["status"] != Status.READY:
        reason = str(record.get("update_error") or record.get("error") or record["status"]).rstrip(". ")
        fail(f"update of {name} failed: {reason}. It stays ready at {old[:7]}; run `modeldepot update {name}` "
             "again once the cause is fixed.")
    new = record.get("commit") or ""
    if new == old:
        say(f"{name} already was at the newest commit of its branch ({old[:7]}).")
    else:
        say(f"{name} updated from {old[:7]} to {new[:7]}: {human_bytes(record.get('size_bytes') or 0)}.")


def pin(model: ModelArg) -> None:
    """Keep a model from ever being removed by eviction or `modeldepot prune`."""
    with open_controller() as controller:
        say(controller.pin_model(model, requested_by=current_user()).message)


def unpin(model: ModelArg) -> None:
    """Let eviction and `modeldepot prune` remove a model again once it is idle."""
    with open_controller() as controller:
        say(controller.unpin_model(model, requested_by=current_user()).message)


def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only list what would be removed.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove the least recently used models until they fit MODELDEPOT_MODELS_QUOTA and the disk's low watermark.

    Never a pinned model, nor one used within MODELDEPOT_EVICT_MIN_IDLE_S (eviction's order and rules). At a
    terminal it shows what would go and asks first, unless --yes; from a script it goes ahead. Run it on a host
    that mounts the models volume, or through the API (MODELDEPOT_URL), which prunes with the server's settings.
    """
    from app.cli.output import prune_view, pruned_victims
    from app.core.quota import Limits

    console = Console(highlight=False)
    with open_controller() as controller:
        limits = Limits.from_settings(controller.settings)
        if not (dry_run or yes) and sys.stdin.isatty():
            preview = controller.prune(dry_run=True)
            console.print(prune_view(preview, limits))
            if not pruned_victims(preview):
                return
            confirm_prune()
        pruned = controller.prune(dry_run=dry_run, requested_by=current_user())
        console.print(prune_view(pruned, limits))
    if dry_run and pruned_victims(pruned):
        say("Nothing was removed (dry run); run `modeldepot prune` to remove them.")


def confirm_prune() -> None:
    try:
        confirmed = typer.confirm("Remove them?", default=False)
    except typer.Abort:
        confirmed = False
    if not confirmed:
        fail("nothing was removed; answer y, or pass --yes.")
