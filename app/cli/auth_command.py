"""`modeldepot auth`: lines of the users file that password sign-in reads (``MODELDEPOT_AUTH_FILE``)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from app.cli.errors import EXIT_USAGE, fail
from app.core.errors import ConfigError
from app.web.auth.roles import parse_role
from app.web.auth.users import check_name, make_entry

auth_cli = typer.Typer(
    cls=TyperGroup,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Users of password sign-in: make lines for the users file (`MODELDEPOT_AUTH_FILE`). Runs locally: it "
    "needs neither Redis nor MODELDEPOT_URL.",
)


@auth_cli.command(
    "hash",
    epilog="**Examples**\n\n"
    "`printf '%s\\n' \"$PASSWORD\" | modeldepot auth hash alice admin >> /etc/modeldepot/users`\n\n"
    "`modeldepot auth hash bob viewer` (on a terminal: type the password twice)",
)
def hash_entry(
    name: Annotated[str, typer.Argument(metavar="NAME", help="User name: 1-128 characters, no ':' or spaces.")],
    role: Annotated[str, typer.Argument(metavar="ROLE", help="viewer or admin.")],
) -> None:
    """Print a users-file line for NAME with ROLE and a scrypt hash of the password.

    The password is read as one line from stdin when stdin is not a terminal (a pipe, as in scripts); on a
    terminal it is asked twice, without echo, and must match. It is never printed. An empty password, an
    unknown role or a bad name is refused with exit code 2.
    """
    try:
        check_name(name)
        parse_role(role, where="ROLE")
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    password = read_password(name)
    if not password:
        fail("empty password refused; nothing was printed.", EXIT_USAGE)
    typer.echo(make_entry(name, role, password))


def read_password(name: str) -> str:
    """One line of stdin when it is not a terminal; else asked twice on the terminal, without echo.

    Raises:
        typer.Exit: the two typed passwords differ (after printing why).
    """
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    try:
        password = getpass.getpass(f"Password for {name}: ")
        again = getpass.getpass("Again: ")
    except EOFError:  # Ctrl-D at a prompt
        return ""
    if password != again:
        fail("the passwords differ; nothing was printed.", EXIT_USAGE)
    return password
