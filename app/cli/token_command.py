"""`modeldepot token`: personal API tokens (`create`, `ls`, `revoke`), straight in Redis like `modeldepot auth hash`
is for the users file: server-side admin commands, not sent over the HTTP API.

`create` prints the token, and only the token, on stdout (so `TOKEN=$(modeldepot token create …)` works); what it
made goes to stderr. Nothing else ever shows a token: Redis keeps only its sha256.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from app.cli.errors import EXIT_USAGE, fail
from app.cli.options import examples, say
from app.cli.output import human_time
from app.core.errors import ConfigError
from app.web.auth.roles import Role, parse_role

if TYPE_CHECKING:
    from app.web.auth.tokens import TokenInfo, TokenStore

token_cli = typer.Typer(
    cls=TyperGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Personal API tokens for scripts and the command line over HTTP (`Authorization: Bearer mdp_…`).",
)

_DURATION_RE = re.compile(r"(\d+)\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

UserOption = Annotated[str | None, typer.Option("--user", "-u", help="Only this user's tokens.")]


def parse_expiry(text: str) -> int:
    """``"90d"`` -> 7776000; also ``12h``, ``30m``, ``2w``, ``45s`` and plain seconds.

    Raises:
        ValueError: not a duration, or zero; the message gives examples.
    """
    match = _DURATION_RE.fullmatch(text.strip().lower())
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)] if match else 0
    if seconds <= 0:
        raise ValueError(f"--expires {text[:20]!r} is not a duration; use e.g. 90d, 12h, 30m or 3600 (seconds), "
                         "or leave it out for a token that never expires")
    return seconds


def _store() -> TokenStore:
    from app.cli.session import cli_settings, connect_checked
    from app.web.auth.tokens import tokens_from_settings

    settings = cli_settings()
    return tokens_from_settings(settings, connect_checked(settings))


@token_cli.command(
    "create",
    epilog=examples(
        "modeldepot token create --user alice --role viewer --label ci --expires 90d",
        'export MODELDEPOT_TOKEN="$(modeldepot token create --user bob --role admin)"',
    ),
)
def create(
    user: Annotated[str, typer.Option("--user", "-u", help="Whose token: a user name (of the users file, if any).")],
    role: Annotated[str, typer.Option("--role", "-r", help="viewer or admin; at most the user's own role.")],
    label: Annotated[str | None, typer.Option(help="A name for it, unique per user (default token-<prefix>).")] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime: 90d, 12h, 30m or seconds (default: never expires).")
    ] = None,
) -> None:
    """Make an API token and print it, only it, on stdout; the details go to stderr. It is shown only now."""
    try:
        token_role = parse_role(role, where="--role")
        expires_s = parse_expiry(expires) if expires is not None else None
    except (ConfigError, ValueError) as e:
        fail(str(e), EXIT_USAGE)
    token, info = _store().create(user, token_role, label=label, expires_s=expires_s)
    typer.echo(token)
    until = f"expires {human_time(info.expires_at)}" if info.expires_at else "never expires"
    typer.echo(f"Created {info.user}'s {info.role.value} token {info.label} ({info.shown}); {until}. "
               "Copy it now: it is not shown again.", err=True)


@token_cli.command("ls", epilog=examples("modeldepot token ls", "modeldepot token ls --user alice --json"))
def list_tokens(
    user: UserOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the details as JSON (for scripts).")] = False,
) -> None:
    """List the API tokens: label, user, role, prefix, created, last used, expiry (never the tokens)."""
    infos = _store().list(user)
    if as_json:
        say(json.dumps([asdict(info) for info in infos], indent=2))
    elif not infos:
        say("No API tokens. Make one with `modeldepot token create --user NAME --role viewer`.")
    else:
        Console(highlight=False).print(tokens_table(infos))


@token_cli.command(
    "revoke", epilog=examples("modeldepot token revoke ci --user alice", "modeldepot token revoke abcd1234")
)
def revoke(
    label_or_prefix: Annotated[
        str, typer.Argument(metavar="LABEL_OR_PREFIX", help="A label, or the prefix `token ls` shows.")
    ],
    user: UserOption = None,
) -> None:
    """Revoke a token: it stops working at once on every UI worker."""
    info = _store().revoke(label_or_prefix, user=user)
    say(f"Revoked {info.user}'s token {info.label} ({info.shown}).")


def tokens_table(infos: list[TokenInfo], *, now: float | None = None) -> Table:
    now = time.time() if now is None else now
    table = Table("label", "user", "role", "prefix", "created", "last used", "expires", box=None, pad_edge=False,
                  header_style="bold")
    for info in infos:
        role = info.role.value if info.role is Role.VIEWER else f"[bold]{info.role.value}[/]"
        last_used = human_time(info.last_used_at) if info.last_used_at else "never"
        table.add_row(escape(info.label), escape(info.user), role, escape(info.shown), human_time(info.created_at),
                      last_used, human_time(info.expires_at) if info.expires_at else "never")
    return table
