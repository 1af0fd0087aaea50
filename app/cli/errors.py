"""How every command ends in trouble: one line on stderr, an exit code, never a traceback (``--debug`` aside)."""

from __future__ import annotations

from typing import NoReturn

import typer

EXIT_ERROR = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)
