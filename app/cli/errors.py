"""How every command ends in trouble: one line on stderr, an exit code, never a traceback (``--debug`` aside).

Over HTTP one error joins the tree of app/core/errors.py, so that the commands report it like the others:

    StateUnavailableError
    └── ServerUnreachableError     (the UI worker at MODELDEPOT_URL does not answer)
"""

from __future__ import annotations

from typing import NoReturn

import typer

from app.core.errors import StateUnavailableError

EXIT_ERROR = 1
EXIT_USAGE = 2


class ServerUnreachableError(StateUnavailableError):
    """The UI worker named by MODELDEPOT_URL cannot be reached (refused, timed out, a proxy's 502...)."""


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)
