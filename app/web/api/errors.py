"""The API's one error shape, ``{"error": {"code", "message"}}``, and where every failure becomes it.

Our errors (:mod:`app.core.errors`) keep their message, which says what to do next; anything unexpected is
logged with its traceback and answered with a generic ``internal`` error. Nothing else reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import (
    ConflictError,
    InvalidInputError,
    ModelDepotError,
    NotFoundError,
    PermissionDeniedError,
    StateUnavailableError,
    TooManySignInsError,
    TooManyTokenAttemptsError,
)
from app.core.validation import show
from app.web.ui.access import GENERIC_ERROR

log = logging.getLogger(__name__)

_BY_STATUS = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
              429: "too_many_requests", 500: "internal", 503: "unavailable"}
# Most specific first: the throttles are PermissionDeniedErrors that mean "wait", not "you may not".
_OUR_ERRORS: tuple[tuple[type[ModelDepotError], int], ...] = (
    (TooManyTokenAttemptsError, 429), (TooManySignInsError, 429), (InvalidInputError, 400), (NotFoundError, 404),
    (ConflictError, 409), (PermissionDeniedError, 403), (StateUnavailableError, 503))
_SHOWN_PROBLEMS = 5


class ApiError(Exception):
    """A refusal of the web layer itself (no token, a body too large...), answered as ``status``/``code``."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = _BY_STATUS.get(status, "error")
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, message: str, *, code: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": {"code": code or _BY_STATUS.get(status, "error"), "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=dict(headers or {}))


def status_of(error: ModelDepotError) -> int:
    """The HTTP status of one of our errors (500 for those a caller cannot act on)."""
    return next((status for kind, status in _OUR_ERRORS if isinstance(error, kind)), 500)


def depot_error_response(error: ModelDepotError) -> Response:
    status = status_of(error)
    if status == 500:
        log.error("error in an API call", exc_info=error)
    headers = ({"Retry-After": str(error.retry_after_s)} if isinstance(error, TooManyTokenAttemptsError)
               else {"Retry-After": "60"} if status == 429 else None)
    return error_response(status, str(error), headers=headers)


def validation_message(errors: Sequence[Any]) -> str:
    """``body.model: Field required; query.n: ...``: where and what, never the rejected value itself."""
    parts = []
    for item in list(errors)[:_SHOWN_PROBLEMS]:
        if item.get("type") == "json_invalid":
            return ("The body is not valid JSON. Send an object such as {\"model\": \"org/name\"} with "
                    "Content-Type: application/json.")
        where = ".".join(str(p) for p in item.get("loc", ()))
        what = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {what}" if where else what)
    more = f" (and {len(errors) - _SHOWN_PROBLEMS} more)" if len(errors) > _SHOWN_PROBLEMS else ""
    return (f"Invalid request: {'; '.join(parts)}{more}. See /api/v1/docs for the fields each route takes.")


def add_error_handlers(app: FastAPI) -> None:
    """Answer our errors, refused requests and unknown routes in the one error shape."""

    async def on_depot_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, ModelDepotError)
        return depot_error_response(error)

    async def on_api_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error_response(error.status, error.message, code=error.code, headers=error.headers)

    async def on_invalid(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return error_response(400, validation_message(error.errors()))

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        path = show(request.scope["path"])  # as sent: request.url drops control characters
        if error.status_code == 404:
            message = f"No such route: {request.method} {path}. See /api/v1/docs for the routes."
        elif error.status_code == 405:
            message = f"{path} does not take {request.method}. See /api/v1/docs for the routes."
        else:
            message = str(error.detail)
        return error_response(error.status_code, message, headers=error.headers)

    app.add_exception_handler(ModelDepotError, on_depot_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(HTTPException, on_http)


class CatchAll:
    """ASGI middleware: an unexpected exception is logged with its traceback and answered as ``internal``.

    A middleware rather than an ``Exception`` handler, which Starlette re-raises after answering (the server
    would log the traceback twice, once as a crash of the whole app).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if not started:  # a stream that already began just ends
                await error_response(500, GENERIC_ERROR)(scope, receive, send)
