"""What the commands share on their surface: the argument and option types, the examples in `--help`, a line
on stdout."""

from __future__ import annotations

from typing import Annotated

import typer

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


def say(message: str) -> None:
    typer.echo(message)


def examples(*lines: str) -> str:
    """A help epilog listing example invocations."""
    return "**Examples**\n\n" + "\n\n".join(f"`{line}`" for line in lines)

