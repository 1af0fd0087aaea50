"""The sign-in page and routes (``/login``, ``/logout``) and the redirect of signed-out visitors to it.

Plain FastAPI on the same app as the Gradio page. The session lives in Redis (see :mod:`app.web.auth.sessions`),
so the cookie works on every UI worker behind the balancer and survives worker restarts.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import ModelDepotError, PermissionDeniedError, TooManySignInsError
from app.web.auth.authenticator import Authenticator
from app.web.auth.roles import User
from app.web.auth.sessions import COOKIE_NAME

log = logging.getLogger(__name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in · Model Depot</title>
<style>
body {{ font-family: system-ui, sans-serif; display: grid; place-items: center; min-height: 90vh; }}
form, .box {{ display: grid; gap: .6em; width: 18em; padding: 1.5em; border: 1px solid #ccc;
  border-radius: 10px; }}
input, button {{ font: inherit; padding: .45em; }} .error {{ color: #b91c1c; }}
</style></head>
<body>{body}</body></html>"""

_FORM = """<form method="post" action="/login">
<h2>Model Depot</h2>{error}
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>"""

_SSO = """<div class="box"><h2>Model Depot</h2><p>Sign in through your company's single sign-on, then
open <a href="/">Model Depot</a> again.</p></div>"""


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(next_path: str, error: str = "", status_code: int = 200) -> HTMLResponse:
    note = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = _FORM.format(error=note, next=html.escape(next_path, quote=True))
    return HTMLResponse(_PAGE.format(body=body), status_code=status_code)


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def add_login_routes(app: FastAPI, auth: Authenticator, *, session_ttl: int) -> None:
    """Add ``GET/POST /login`` and ``GET/POST /logout`` to ``app`` (before the Gradio app is mounted)."""

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        if not auth.has_login_form:
            return HTMLResponse(_PAGE.format(body=_SSO))
        return _login_page(safe_next(request.query_params.get("next")))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        next_path = safe_next(str(form.get("next", "/")))
        try:
            user, token = await run_in_threadpool(auth.login, name, password)
        except TooManySignInsError as e:
            log.warning("sign-in paused for %r (from %s)", name[:64], request.client.host if request.client else "?")
            return _login_page(next_path, str(e), status_code=429)
        except PermissionDeniedError as e:
            log.info("failed sign-in for %r from %s", name[:64], request.client.host if request.client else "?")
            return _login_page(next_path, str(e), status_code=401)
        except ModelDepotError as e:
            return _login_page(next_path, str(e), status_code=503)
        log.info("%s signed in (%s)", user.name, user.role.value)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(COOKIE_NAME, token, max_age=session_ttl, httponly=True, samesite="lax",
                            secure=_is_https(request), path="/")
        return response

    @app.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
    async def logout(request: Request) -> Response:
        try:
            await run_in_threadpool(auth.logout, request)
        except ModelDepotError:
            log.warning("could not delete a session from Redis; it expires by itself")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response


class LoginRedirect:
    """ASGI middleware: a signed-out browser asking for the page goes to ``/login`` instead of a 401."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, pages: frozenset[str] = frozenset({"/"})) -> None:
        self.app = app
        self.auth = auth
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in self.pages:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            user: User | None = await run_in_threadpool(self.auth.user_for, request)
        except ModelDepotError as e:
            await PlainTextResponse(str(e), status_code=503)(scope, receive, send)
            return
        if user is None:
            target = "/login?next=" + quote(safe_next(scope["path"]), safe="/")
            await RedirectResponse(target, status_code=303)(scope, receive, send)
            return
        await self.app(scope, receive, send)
