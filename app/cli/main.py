"""`modeldepot` command line (typer + rich).

Every command goes through the same :class:`~app.core.controller.Controller` as the UI, so what it does shows
in every open page at once: directly on Redis, or with MODELDEPOT_URL (``--url``) through a UI worker's HTTP API
(:class:`~app.cli.remote.RemoteDepot`), with the same output and exit codes. `serve`, `worker`, `snapshot`,
`auth` and `token` are server-side and always use Redis. Our errors (:class:`~app.core.errors.ModelDepotError`)
are caught in one place and become one line on stderr with exit code 1; ``--debug`` shows the traceback instead.

This module is the entry point and holds the core commands; what every command stands on is in
app/cli/session.py, and the lifecycle commands (`outdated`, `update`, `pin`, `unpin`, `prune`) in
app/cli/lifecycle_commands.py.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

from app.cli.auth_command import auth_cli
from app.cli.errors import fail
from app.cli.lifecycle_commands import outdated, pin, prune, unpin, update
from app.cli.options import ModelArg, TimeoutOption, WaitOption, examples, say
from app.cli.session import (
    ROOT_OPTIONS,
    RootOptions,
    bare_store,
    cli_settings,
    current_user,
    open_controller,
    open_remote,
    seed,
)
from app.cli.token_command import token_cli
from app.cli.waiting import wait_for_download
from app.core.errors import ModelDepotError, StateFileError
from app.core.records import RecordView, Status

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LONG_RUNNING = frozenset({"serve", "worker"})
SERVER_SIDE = "Server-side: uses Redis (MODELDEPOT_REDIS_URL) even when MODELDEPOT_URL is set."

if TYPE_CHECKING:  # imported where used, so `--help` stays fast
    from app.core.settings import Settings
    from app.core.status import HealthReport
    from app.core.store import Store


class DepotGroup(TyperGroup):
    """Catches errors centrally: one line on stderr and a non-zero exit, the traceback only with --debug."""

    def invoke(self, ctx: Any) -> Any:
        options = ROOT_OPTIONS.set(RootOptions.of(ctx.params))
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except ModelDepotError as e:
            if ctx.params.get("debug"):
                raise
            fail(str(e))
        except Exception as e:
            if ctx.params.get("debug"):
                raise
            fail(
                f"unexpected {type(e).__name__}: {e}. Run again with --debug to see the traceback, "
                "and report it if it persists."
            )
        finally:
            ROOT_OPTIONS.reset(options)


cli = typer.Typer(
    cls=DepotGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    help="Model Depot: a team's shared Hugging Face model manager.\n\n"
    "Reads MODELDEPOT_REDIS_URL and the other MODELDEPOT_* settings from the environment. With MODELDEPOT_URL "
    "(or --url) set, the commands go through that UI worker's HTTP API and need no Redis; serve, worker, "
    "snapshot, auth and token are server-side and always use Redis.",
    epilog="**Examples**\n\n`modeldepot status`\n\n`modeldepot pull org/name --wait`\n\n`modeldepot --debug ls`"
    "\n\n`MODELDEPOT_URL=http://modeldepot.internal:7860 MODELDEPOT_TOKEN=mdp_… modeldepot ls`",
)
snapshot_cli = typer.Typer(
    cls=TyperGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help=f"Move the model list between deployments as a JSON file. {SERVER_SIDE}",
)
cli.add_typer(snapshot_cli, name="snapshot")
cli.add_typer(auth_cli, name="auth")
cli.add_typer(token_cli, name="token")


class SortBy(StrEnum):
    """How `modeldepot ls` sorts."""

    NAME = "name"
    LAST_USED = "last-used"
    SIZE = "size"


# ---- wiring ----------------------------------------------------------------------------------------


def checked_url(value: str | None) -> str | None:
    """``--url`` as MODELDEPOT_URL would be read (the same rule and message)."""
    from pydantic import ValidationError

    from app.core.settings import Settings

    if value is None:
        return None
    try:
        return Settings.model_validate({"url": value}).url
    except ValidationError as e:
        raise typer.BadParameter(e.errors()[0]["msg"].removeprefix("Value error, ")) from None


@cli.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", metavar="URL", callback=checked_url,
            help="A UI worker's address (default: MODELDEPOT_URL): the commands go through its HTTP API, no Redis.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", metavar="TOKEN", show_default=False,
            help="API token for --url (default: MODELDEPOT_TOKEN; prefer that: a flag shows in `ps`).",
        ),
    ] = None,
) -> None:
    """Model Depot: a team's shared Hugging Face model manager."""
    level = logging.INFO if ctx.invoked_subcommand in LONG_RUNNING else logging.WARNING
    logging.basicConfig(level=logging.DEBUG if debug else level, format=LOG_FORMAT)
    # --url and --token reach the commands through ROOT_OPTIONS, set by DepotGroup.invoke


# ---- processes ---------------------------------------------------------------------------------------


@cli.command(
    epilog=examples(
        "modeldepot serve --port 7860",
        "MODELDEPOT_REDIS_URL=redis://redis:6379/0 modeldepot serve --host 0.0.0.0",
    )
)
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 7860,
) -> None:
    """Run a UI worker (the page and the HTTP API). With no MODELDEPOT_REDIS_URL, also start redis-server and
    download workers.

    Server-side: uses Redis (MODELDEPOT_REDIS_URL) even when MODELDEPOT_URL is set.
    """
    from app.cli.runtime import serve as run

    run(host, port)


@cli.command(
    epilog=examples(
        "MODELDEPOT_REDIS_URL=redis://redis:6379/0 modeldepot worker",
        "modeldepot worker --queues downloads --name gpu-host-1",
    )
)
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated: downloads, maintenance.")] = "maintenance,downloads",
    name: Annotated[str | None, typer.Option(help="Worker name (default: a random id).")] = None,
    burst: Annotated[bool, typer.Option(help="Exit when the queues are empty.")] = False,
) -> None:
    """Run an RQ worker for downloads and removals (several may run on several hosts).

    Server-side: uses Redis (MODELDEPOT_REDIS_URL) even when MODELDEPOT_URL is set.
    """
    cli_settings()  # a bad setting is reported here, as for every command
    args = [sys.executable, "-m", "workers", "--queues", queues, *(["--name", name] if name else []),
            *(["--burst"] if burst else [])]
    os.execv(sys.executable, args)  # the worker's own entry point: this layer never imports the workers


# ---- models ------------------------------------------------------------------------------------------


@cli.command(
    epilog=examples(
        "modeldepot pull Qwen/Qwen2.5-0.5B-Instruct --wait",
        "modeldepot pull org/name@v1.0 --include '*.safetensors' --include '*.json'",
        "modeldepot pull org/name --revision main --exclude 'onnx/*'",
    )
)
def pull(
    model: ModelArg,
    revision: Annotated[str | None, typer.Option("--revision", "-r", help="Branch, tag or commit.")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", "-i", help="Only files matching this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-x", help="Skip files matching this glob (repeatable).")
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Queue a download of a model from the Hub onto the shared models volume."""
    with open_controller(listen=wait) as controller:
        outcome = controller.download_model(model, revision, include, exclude, requested_by=current_user())
        say(outcome.message)
        if wait:
            wait_for_download(controller, outcome.name, timeout, report_finished)


def report_finished(name: str, record: RecordView | None) -> None:
    from app.core.units import human_bytes

    if record is None:
        fail(f"{name} was removed before it finished.")
    if record["status"] == Status.FAILED:
        reason = str(record.get("error") or "no reason recorded").rstrip(". ")
        fail(f"download of {name} failed: {reason}. Fix the cause, then run `modeldepot pull {name}` again.")
    if record["status"] == Status.CANCELLED:
        fail(f"download of {name} was cancelled.")
    if record["status"] == Status.PAUSED:
        fail(f"{name} is paused; resume it with `modeldepot resume {name}`.")
    say(f"{name} is ready: {human_bytes(record.get('size_bytes') or 0)} at commit {(record.get('commit') or '')[:7]}.")


@cli.command(
    "ls",
    epilog=examples(
        "modeldepot ls",
        "modeldepot ls --status failed",
        "modeldepot ls --sort last-used",
        "modeldepot ls --json | jq -r '.[] | select(.status==\"ready\") | .name'",
    ),
)
def list_models(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the records as JSON (for scripts; the same as the UI's list)."),
    ] = False,
    status: Annotated[
        Status | None,
        typer.Option("--status", "-s", case_sensitive=False, help="Only models in this status."),
    ] = None,
    sort: Annotated[
        SortBy,
        typer.Option(
            "--sort", case_sensitive=False,
            help="name; last-used: least recently used first, the order eviction and prune take (a model not read "
            "since its download counts from then); size: largest first.",
        ),
    ] = SortBy.NAME,
) -> None:
    """List the models: name, revision, status, size, when, last used; pins and available updates."""
    from app.cli.output import models_table, sort_models

    with open_controller() as controller:
        records = sort_models(controller.fetch_models(), sort.value)
    if status is not None:
        records = [r for r in records if r.get("status") == status.value]
    if as_json:
        say(json.dumps(records, indent=2))
    elif not records:
        say("No models. Add one with `modeldepot pull org/name`.")
    else:
        Console(highlight=False).print(models_table(records))


@cli.command(epilog=examples("modeldepot rm org/name", "modeldepot rm org/name@v1.0 --yes"))
def rm(
    model: ModelArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a model: delete its files from the volume and drop it from the list."""
    with open_controller() as controller:
        record = controller.get_model(model)
        if not yes:
            confirm_removal(record)
        say(controller.remove_model(model, requested_by=current_user()).message)


def confirm_removal(record: RecordView) -> None:
    from app.core.records import disk_bytes
    from app.core.units import human_bytes

    question = f"Remove {record['name']} ({record['status']}) and free {human_bytes(disk_bytes(record))}?"
    try:
        confirmed = typer.confirm(question, default=False)
    except typer.Abort:
        confirmed = False
    if not confirmed:
        fail("nothing was removed; answer y, or pass --yes.")


@cli.command(epilog=examples("modeldepot retry org/name", "modeldepot retry org/name@v1.0 --wait"))
def retry(model: ModelArg, wait: WaitOption = False, timeout: TimeoutOption = None) -> None:
    """Queue a failed or cancelled download again with the same revision and patterns."""
    with open_controller(listen=wait) as controller:
        outcome = controller.retry_download(model, requested_by=current_user())
        say(outcome.message)
        if wait:
            wait_for_download(controller, outcome.name, timeout, report_finished)


@cli.command(epilog=examples("modeldepot cancel org/name"))
def cancel(model: ModelArg) -> None:
    """Cancel a queued, running or paused download; its partial files are deleted."""
    with open_controller() as controller:
        say(controller.cancel_download(model, requested_by=current_user()).message)


@cli.command(epilog=examples("modeldepot pause org/name", "modeldepot resume org/name"))
def pause(model: ModelArg) -> None:
    """Pause a queued or running download; its partial files stay for `modeldepot resume`."""
    with open_controller() as controller:
        say(controller.pause_download(model, requested_by=current_user()).message)


@cli.command(epilog=examples("modeldepot resume org/name", "modeldepot resume org/name@v1.0"))
def resume(model: ModelArg) -> None:
    """Queue a paused download again; it goes on from the files already downloaded."""
    with open_controller() as controller:
        say(controller.resume_download(model, requested_by=current_user()).message)


@cli.command(epilog=examples("modeldepot verify org/name"))
def verify(model: ModelArg) -> None:
    """Re-check a ready model's files against the Hub's checksums (runs as a job)."""
    with open_controller() as controller:
        say(controller.verify_model(model, requested_by=current_user()).message)


@cli.command(epilog=examples("modeldepot logs -n 50", "modeldepot logs --follow"))
def logs(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many of the latest lines.")] = 20,
) -> None:
    """Print the shared event log (who did what), oldest first."""
    from app.cli.follow import follow_logs

    with open_controller(listen=follow) as controller:
        history = controller.get_logs()
        for line in history[max(0, len(history) - lines) :]:
            typer.echo(line)
        if follow:
            follow_logs(controller, typer.echo, since=history)  # returns on Ctrl-C


# ---- lifecycle on disk: updates, pins, room (app/cli/lifecycle_commands.py) -----------------------------
# Registered one by one rather than with a nameless `cli.add_typer`: typer lists a sub-Typer's commands after all
# of `cli`'s own, and `--help` keeps them here, between `logs` and `status`.

cli.command(
    epilog=examples(
        "modeldepot outdated",
        "modeldepot outdated --check",
        "modeldepot outdated --json | jq -r '.[] | select(.update_available) | .name'",
    )
)(outdated)
cli.command(epilog=examples("modeldepot update org/name", "modeldepot update org/name --wait"))(update)
cli.command(epilog=examples("modeldepot pin org/name", "modeldepot unpin org/name"))(pin)
cli.command(epilog=examples("modeldepot unpin org/name"))(unpin)
cli.command(epilog=examples("modeldepot prune --dry-run", "modeldepot prune --yes"))(prune)


# ---- operations --------------------------------------------------------------------------------------


@cli.command(epilog=examples("modeldepot status", "modeldepot status --json | jq .workers"))
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Health report: Redis, queues, workers (alive or gone), models by status, free space, room and lifecycle.

    Exits 1 when unhealthy: Redis unreachable, or a queue without a live worker.
    """
    from app.cli.output import status_view

    settings = cli_settings()
    if settings.url is not None:
        with open_remote(settings) as remote:
            report = remote.health()
    else:
        report = direct_report(settings)
    if as_json:
        say(json.dumps({**asdict(report), "healthy": report.healthy}, indent=2))
    else:
        Console(highlight=False).print(status_view(report))
    if not report.healthy:
        fail(f"unhealthy: {'; '.join(report.problems)}")


def direct_report(settings: Settings) -> HealthReport:
    """The health report read from Redis, the RQ registries and this host's volume (the API serves the same)."""
    from app.core.connection import BRIEF_S, connect
    from app.core.controller import Controller
    from app.core.status import health_report

    connection = connect(settings, patience_s=BRIEF_S)  # a report says what is down rather than wait for it

    def replica() -> Controller:
        seed(connection, settings)
        return Controller(settings, connection, listen=False)

    return health_report(settings, connection, replica)


@snapshot_cli.command(
    "export",
    epilog=examples("modeldepot snapshot export state.json", "modeldepot snapshot export - | gzip > state.json.gz"),
)
def snapshot_export(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Where to write; - for stdout.")],
) -> None:
    """Write every model record and the event log to a JSON file (server-side: reads Redis)."""
    from app.core.snapshot_io import STDIO, export_text, write_text

    settings = cli_settings()
    store = bare_store(settings)
    seed(store.redis, settings)
    text, state = export_text(store)
    write_text(file, text)
    if file != STDIO:
        say(f"Exported {len(state.models)} models (state version {state.version}) to {file}.")


@snapshot_cli.command(
    "import",
    epilog=examples("modeldepot snapshot import state.json", "modeldepot snapshot import state.json --force"),
)
def snapshot_import(
    file: Annotated[str, typer.Argument(metavar="FILE", help="A file from `snapshot export`; - for stdin.")],
    force: Annotated[
        bool,
        typer.Option(help="Import even though Redis already has models (same-named records are overwritten)."),
    ] = False,
) -> None:
    """Load a snapshot file into Redis; refuses a malformed file, and a Redis with models unless --force
    (server-side: writes Redis)."""
    from app.core.snapshot_io import import_state, read_document

    state = read_document(file)
    settings = cli_settings()
    store = bare_store(settings)
    result = import_state(store, state, source=file, force=force)
    persist_after_import(store, settings)
    how = "into an empty Redis" if result.seeded else f"({result.replaced} replaced)"
    say(f"Imported {result.models} models {how}.")


def persist_after_import(store: Store, settings: Settings) -> None:
    """Refresh controller_state.json when the models volume is mounted here."""
    from app.core import snapshot

    path = settings.resolved_state_file
    if not path.parent.is_dir():
        return
    try:
        written = snapshot.persist(store, path)
    except StateFileError as e:
        typer.echo(f"warning: imported, but {e}", err=True)
        return
    if not written:
        typer.echo(
            f"warning: imported, but {path} holds a newer state version and was left as it is; move it aside "
            "if it should not be used to rebuild Redis.",
            err=True,
        )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
