"""`modeldepot` command line (typer + rich).

Every command goes through the same :class:`~app.core.controller.Controller` as the UI, so what it does shows
in every open page at once. Our errors (:class:`~app.core.errors.ModelDepotError`) are caught in one place and
become one line on stderr with exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

from app.cli.auth_command import auth_cli
from app.cli.errors import fail
from app.core.errors import ModelDepotError, StateFileError
from app.core.records import ModelRecord, RecordView, Status

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LONG_RUNNING = frozenset({"serve", "worker"})

if TYPE_CHECKING:  # imported where used, so `--help` stays fast
    import redis

    from app.core.controller import Controller
    from app.core.settings import Settings
    from app.core.store import Store


class DepotGroup(TyperGroup):
    """Catches errors centrally: one line on stderr and a non-zero exit, the traceback only with --debug."""

    def invoke(self, ctx: Any) -> Any:
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


cli = typer.Typer(
    cls=DepotGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    help="Model Depot: a team's shared Hugging Face model manager.\n\n"
    "Reads MODELDEPOT_REDIS_URL and the other MODELDEPOT_* settings from the environment.",
    epilog="**Examples**\n\n`modeldepot status`\n\n`modeldepot pull org/name --wait`\n\n`modeldepot --debug ls`",
)
snapshot_cli = typer.Typer(
    cls=TyperGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Move the model list between deployments as a JSON file.",
)
cli.add_typer(snapshot_cli, name="snapshot")
cli.add_typer(auth_cli, name="auth")


ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="org/name or org/name@revision.")]
WaitOption = Annotated[
    bool,
    typer.Option(
        "--wait", "-w", help="Show progress until ready; exit non-zero if it fails, is cancelled or is paused."
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(min=0, help="With --wait: stop waiting after this many seconds (the download goes on)."),
]


class SortBy(StrEnum):
    """How `modeldepot ls` sorts."""

    NAME = "name"
    LAST_USED = "last-used"
    SIZE = "size"


def say(message: str) -> None:
    typer.echo(message)


def examples(*lines: str) -> str:
    """A help epilog listing example invocations."""
    return "**Examples**\n\n" + "\n\n".join(f"`{line}`" for line in lines)


# ---- wiring ----------------------------------------------------------------------------------------


@cli.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    """Model Depot: a team's shared Hugging Face model manager."""
    level = logging.INFO if ctx.invoked_subcommand in LONG_RUNNING else logging.WARNING
    logging.basicConfig(level=logging.DEBUG if debug else level, format=LOG_FORMAT)


def cli_settings() -> Settings:
    """The settings; with no Redis URL, the Redis a `modeldepot serve` in the same data dir started.

    Raises:
        ConfigError: an environment variable holds a value that cannot be used.
    """
    from app.core.embedded import existing_socket
    from app.core.settings import get_settings

    settings = get_settings()
    if settings.redis_url is None:
        embedded_socket = existing_socket(settings.data_dir)
        if embedded_socket is not None:
            return settings.model_copy(update={"redis_url": f"unix://{embedded_socket}"})
    return settings


def connect_checked(settings: Settings) -> redis.Redis:
    """A connection to the configured Redis that answered a ping.

    Raises:
        ConfigError: no Redis URL, or Redis refused the password.
        StateUnavailableError: Redis does not answer.
    """
    from app.core.connection import check, connect

    connection = connect(settings)
    check(connection)
    return connection


@contextlib.contextmanager
def open_controller(*, listen: bool = False) -> Iterator[Controller]:
    """The controller every command uses; ``listen`` only when the command follows live changes.

    Following ends on Ctrl-C, so with ``listen`` SIGINT only sets the flag the follow loop looks at (see
    app/cli/follow.py) from before connecting until after the listener stopped: it never lands in between.
    """
    from app.cli.follow import catching_interrupts
    from app.core.controller import Controller

    with catching_interrupts() if listen else contextlib.nullcontext():
        settings = cli_settings()
        connection = connect_checked(settings)
        seed(connection, settings)
        with Controller(settings, connection, listen=listen) as controller:
            yield controller


def seed(connection: redis.Redis, settings: Settings) -> None:
    """An empty Redis gets ``controller_state.json`` before a command reads or writes it (as `serve` does)."""
    from app.core.seeding import seed_from_snapshot
    from app.core.store import Store

    seed_from_snapshot(Store.for_settings(connection, settings, sender=f"cli:{socket.gethostname()}"),
                       settings.resolved_state_file)


def current_user() -> str:
    """Who the event log names for a command run from this shell."""
    try:
        return f"{getpass.getuser()} (cli)"
    except (OSError, KeyError):
        return "cli"


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
    """Run a UI worker. With no MODELDEPOT_REDIS_URL, also start redis-server and download workers."""
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
    """Run an RQ worker for downloads and removals (several may run on several hosts)."""
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


# ---- lifecycle on disk: updates, pins, room -----------------------------------------------------------


@cli.command(
    epilog=examples(
        "modeldepot outdated",
        "modeldepot outdated --check",
        "modeldepot outdated --json | jq -r '.[] | select(.update_available) | .name'",
    )
)
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


def check_now(controller: Controller, timeout: float, *, err: bool) -> list[str]:
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


@cli.command(epilog=examples("modeldepot update org/name", "modeldepot update org/name --wait"))
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


@cli.command(epilog=examples("modeldepot pin org/name", "modeldepot unpin org/name"))
def pin(model: ModelArg) -> None:
    """Keep a model from ever being removed by eviction or `modeldepot prune`."""
    with open_controller() as controller:
        say(controller.pin_model(model, requested_by=current_user()).message)


@cli.command(epilog=examples("modeldepot unpin org/name"))
def unpin(model: ModelArg) -> None:
    """Let eviction and `modeldepot prune` remove a model again once it is idle."""
    with open_controller() as controller:
        say(controller.unpin_model(model, requested_by=current_user()).message)


@cli.command(epilog=examples("modeldepot prune --dry-run", "modeldepot prune --yes"))
def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only list what would be removed.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove the least recently used models until they fit MODELDEPOT_MODELS_QUOTA and the disk's low watermark.

    Never a pinned model, nor one used within MODELDEPOT_EVICT_MIN_IDLE_S (eviction's order and rules). At a
    terminal it shows what would go and asks first, unless --yes; from a script it goes ahead. Run it on a host
    that mounts the models volume.
    """
    from app.cli.output import prune_view
    from app.core.quota import Limits

    console = Console(highlight=False)
    with open_controller() as controller:
        limits = Limits.from_settings(controller.settings)
        if not (dry_run or yes) and sys.stdin.isatty():
            preview = controller.prune(dry_run=True)
            console.print(prune_view(preview, limits))
            if not preview.plan.victims:
                return
            confirm_prune()
        pruned = controller.prune(dry_run=dry_run, requested_by=current_user())
        console.print(prune_view(pruned, limits))
    if dry_run and pruned.plan.victims:
        say("Nothing was removed (dry run); run `modeldepot prune` to remove them.")


def confirm_prune() -> None:
    try:
        confirmed = typer.confirm("Remove them?", default=False)
    except typer.Abort:
        confirmed = False
    if not confirmed:
        fail("nothing was removed; answer y, or pass --yes.")


# ---- operations --------------------------------------------------------------------------------------


@cli.command(epilog=examples("modeldepot status", "modeldepot status --json | jq .workers"))
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Health report: Redis, queues, workers (alive or gone), models by status, free space, room and lifecycle.

    Exits 1 when unhealthy: Redis unreachable, or a queue without a live worker.
    """
    from app.cli.output import status_view
    from app.core.connection import connect
    from app.core.controller import Controller
    from app.core.status import RoomInfo, TransferLimits, fill_report, redis_report

    settings = cli_settings()
    connection = connect(settings)
    report = redis_report(connection)
    report.transfers = TransferLimits.of(settings)
    report.room = RoomInfo.read(settings)
    if report.redis_version is not None:
        seed(connection, settings)
        with Controller(settings, connection, listen=False) as controller:
            fill_report(
                report,
                controller.jobs,
                controller.models,
                state_version=controller.version,
                models_dir=settings.resolved_models_dir,
            )
    if as_json:
        say(json.dumps({**asdict(report), "healthy": report.healthy}, indent=2))
    else:
        Console(highlight=False).print(status_view(report))
    if not report.healthy:
        fail(f"unhealthy: {'; '.join(report.problems)}")


@snapshot_cli.command(
    "export",
    epilog=examples("modeldepot snapshot export state.json", "modeldepot snapshot export - | gzip > state.json.gz"),
)
def snapshot_export(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Where to write; - for stdout.")],
) -> None:
    """Write every model record and the event log to a JSON file."""
    from app.core.snapshot_io import STDIO, export_text, write_text

    with open_controller() as controller:
        text, state = export_text(controller.store)
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
    """Load a snapshot file into Redis; refuses a malformed file, and a Redis with models unless --force."""
    from app.core.snapshot_io import import_state, read_document

    state = read_document(file)
    settings = cli_settings()
    store = bare_store(settings)
    result = import_state(store, state, source=file, force=force)
    persist_after_import(store, settings)
    how = "into an empty Redis" if result.seeded else f"({result.replaced} replaced)"
    say(f"Imported {result.models} models {how}.")


def bare_store(settings: Settings) -> Store:
    """A store without a controller (see app/transfer.py for why)."""
    from app.core.keys import Keys
    from app.core.store import Store

    return Store(
        connect_checked(settings),
        Keys(settings.key_prefix),
        log_size=settings.log_size,
        stream_size=settings.stream_size,
        sender=f"cli:{socket.gethostname()}:{os.getpid()}",
    )


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
