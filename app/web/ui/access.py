"""Where the UI meets users and errors: who is calling, may they write, and how failures are shown."""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import gradio as gr

from app.core.errors import ModelDepotError, PermissionDeniedError
from app.web.auth.authenticator import Authenticator
from app.web.auth.roles import Role, User, require_admin

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ANONYMOUS = User("anonymous", Role.ADMIN)
"""Everyone, when auth is off (the default): may do everything, recorded as the system user."""

GENERIC_ERROR = ("Something went wrong on the server; it was logged. Try again, and if it keeps failing ask "
                 "an admin to look at the UI worker's log.")


def user_message(error: Exception, where: str) -> str:
    """What to tell the user about ``error``: our own message, or a generic one (the details are logged)."""
    if isinstance(error, ModelDepotError):
        return str(error)
    log.error("unexpected error in %s", where, exc_info=error)
    return GENERIC_ERROR


def ui_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Raise failures as ``gr.Error`` with :func:`user_message` (for the API and the page's reads)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            raise gr.Error(user_message(e, fn.__name__), print_exception=False) from e

    return wrapper


def async_ui_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """:func:`ui_errors` for coroutines (Gradio runs them on the event loop, without a thread hop)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            raise gr.Error(user_message(e, fn.__name__), print_exception=False) from e

    return wrapper


def alert(text: str) -> str:
    """A failure line for the page's status area."""
    return f'<p class="md-fail" role="alert">⚠ {html.escape(text)}</p>'


def notice(text: str) -> str:
    """A success line for the page's status area."""
    return f'<p class="md-ok" role="status">{html.escape(text)}</p>'


def inline_errors(*, extra_outputs: int = 0) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Show failures of a page action in its status line (its first output) and leave the others as they are.

    Gradio 6 shows no toast for a ``gr.Error`` raised outside the queue, and the page's events run
    outside the queue (see :mod:`app.web.ui.live`), so the message goes where the user is looking instead.
    """

    def decorate(fn: Callable[P, Any]) -> Callable[P, Any]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                line = alert(user_message(e, fn.__name__))
                return (line, *(gr.skip() for _ in range(extra_outputs))) if extra_outputs else line

        return wrapper

    return decorate


class Access:
    """Resolves the caller of an event and enforces roles; with ``auth`` None everyone is an admin."""

    def __init__(self, auth: Authenticator | None) -> None:
        self.auth = auth

    @property
    def enabled(self) -> bool:
        return self.auth is not None

    def user(self, request: gr.Request | None) -> User:
        """Raises: PermissionDeniedError: auth is on and nobody is signed in."""
        if self.auth is None:
            return ANONYMOUS
        user = self.auth.user_for(request) if request is not None else None
        if user is None:
            raise PermissionDeniedError("You are not signed in (or your session expired). Sign in at /login.")
        return user

    def admin(self, request: gr.Request | None, action: str) -> str | None:
        """Check that the caller may ``action``; returns the name to record as ``requested_by``.

        Raises:
            PermissionDeniedError: not signed in, or a viewer.
        """
        user = self.user(request)
        require_admin(user, action)
        return None if self.auth is None else user.name
