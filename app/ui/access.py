"""Where the UI meets users and errors: who is calling, may they write, and how failures are shown."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import gradio as gr

from app.auth import Authenticator, Role, User, require_admin
from app.errors import ModelDepotError, PermissionDeniedError

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ANONYMOUS = User("anonymous", Role.ADMIN)
"""Everyone, when auth is off (the default): may do everything, recorded as the system user."""

GENERIC_ERROR = ("Something went wrong on the server; it was logged. Try again, and if it keeps failing ask "
                 "an admin to look at the UI worker's log.")


def ui_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Show our errors as their message (it says what to do); log anything else and show a generic one."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ModelDepotError as e:
            raise gr.Error(str(e), print_exception=False) from e
        except Exception as e:
            log.exception("unexpected error in %s", getattr(fn, "__name__", "a UI callback"))
            raise gr.Error(GENERIC_ERROR, print_exception=False) from e

    return wrapper


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
