"""Who is calling the API, by the page's own rules (:mod:`app.web.auth`), plus personal API tokens.

In order: an ``Authorization: Bearer mdp_…`` token (checked in Redis at every call, so a revocation counts on
every worker at once; wrong ones are throttled per client address); else the page's sign-in (SSO header, then
session cookie); else, when sign-in is off, everyone is :data:`~app.web.ui.access.ANONYMOUS`, an admin.

A browser sends cookies (and an SSO proxy its header) with every request, whichever site made it: a call that
changes something on such credentials must come from the page's own origin (no CSRF). A bearer token is never
sent by a browser on its own, so bearer calls need no such check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.web.api.errors import ApiError
from app.web.auth.authenticator import Authenticator
from app.web.auth.roles import Role, User, require_admin
from app.web.auth.tokens import TokenStore
from app.web.ui.access import ANONYMOUS

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WRONG_TOKEN = ("The API token is wrong, expired or revoked. Make a new one on the page's API tokens panel or "
                "with `modeldepot token create`, and send it as Authorization: Bearer mdp_….")
_NO_TOKEN = "Authorization: Bearer needs the token after it: Authorization: Bearer mdp_…."
_SIGN_IN = ("You are not signed in. Send an API token (Authorization: Bearer mdp_…), or sign in on the page at "
            "/login.")
_CROSS_SITE = ("This call changes something and comes from another site (its Origin or Referer is not this "
               "server's), so it is refused. Call it from the page itself, or send an API token instead.")
_NO_ORIGIN = ("A call that changes something on a sign-in cookie must say where it comes from (an Origin or "
              "Referer header), as browsers do. Scripts should send an API token instead.")


class Via(StrEnum):
    TOKEN = "token"
    SESSION = "session"
    HEADER = "header"
    OPEN = "open"


@dataclass(frozen=True)
class Caller:
    """The user behind one API call, and how they were recognised."""

    user: User
    via: Via

    @property
    def requested_by(self) -> str | None:
        """The name the records and the log show (None: the system user, when sign-in is off)."""
        return None if self.via is Via.OPEN else self.user.name

    def admin(self, action: str) -> str | None:
        """Check that the caller may ``action``; returns :attr:`requested_by`.

        Raises:
            PermissionDeniedError: a viewer.
        """
        require_admin(self.user, action)
        return self.requested_by


class Callers:
    """Resolves the caller of an API request; its :meth:`resolve` is the routes' dependency."""

    def __init__(self, auth: Authenticator | None, tokens: TokenStore) -> None:
        self.auth = auth
        self.tokens = tokens

    async def resolve(self, request: Request) -> Caller:
        """Raises: ApiError (401, 403), TooManyTokenAttemptsError, StateUnavailableError."""
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":  # another scheme (a proxy's Basic sign-in) is not ours to judge
            return await run_in_threadpool(self._bearer, token.strip(), _source(request))
        if self.auth is None:
            if request.method not in SAFE_METHODS:
                _check_origin(request, ambient=False)
            return Caller(ANONYMOUS, Via.OPEN)
        known, user = self.auth.peek(request)  # no I/O when the session was seen in the last seconds
        if not known:
            user = await run_in_threadpool(self.auth.user_for, request)
        if user is None:
            raise ApiError(401, _SIGN_IN, headers={"WWW-Authenticate": "Bearer"})
        if request.method not in SAFE_METHODS:
            _check_origin(request, ambient=True)
        header = self.auth.header
        via = Via.HEADER if header and request.headers.get(header, "").strip() else Via.SESSION
        return Caller(user, via)

    def _bearer(self, token: str, source: str) -> Caller:
        if not token:
            raise ApiError(401, _NO_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        self.tokens.throttle.check(source)
        info = self.tokens.verify(token)
        if info is None:
            self.tokens.throttle.failed(source)
            raise ApiError(401, _WRONG_TOKEN, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return Caller(User(info.user, Role(info.role)), Via.TOKEN)


async def current_caller(request: Request) -> Caller:
    """The routes' dependency: the :class:`Callers` of the API app (``app.state.callers``) resolves the caller."""
    callers: Callers = request.app.state.callers
    return await callers.resolve(request)


CallerDep = Annotated[Caller, Depends(current_caller)]


def _source(request: Request) -> str:
    """The client address (uvicorn puts the balancer's X-Forwarded-For there when the balancer is trusted)."""
    return request.client.host if request.client is not None else "?"


def _check_origin(request: Request, *, ambient: bool) -> None:
    """Refuse a state change from another site; with ``ambient`` credentials (cookie, SSO header) also one that
    does not say where it comes from.

    The site is this request's ``Host``, or the ``X-Forwarded-Host`` a proxy that rewrites ``Host`` sets (another
    site's page cannot set that header: a browser asks the CORS preflight first, which fails).

    Raises:
        ApiError: 403.
    """
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None or origin == "null":
        if ambient or origin == "null":
            raise ApiError(403, _NO_ORIGIN if origin is None else _CROSS_SITE)
        return
    ours = {request.headers.get("host", "").lower(), request.headers.get("x-forwarded-host", "").lower()}
    if urlsplit(origin).netloc.lower() not in ours - {""}:
        raise ApiError(403, _CROSS_SITE)
