"""What a request body may be: at most :data:`MAX_BODY` bytes of ``application/json``.

Checked before any route runs, from the ``Content-Length`` header and again on the bytes that actually arrive
(a chunked body has no length to trust), so a large body is refused without being held in memory. A request
that declares a content type must declare JSON even with an empty body: a browser form aimed at the API from
another site always declares one, and is refused here before it can act.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.api.errors import error_response

MAX_BODY = 64 * 1024
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOO_LARGE = f"The request body is over {MAX_BODY // 1024} KiB; send less (a download needs a few hundred bytes)."
_NOT_JSON = "Send the body as JSON with the header Content-Type: application/json."


def is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/json"


class BodyLimits:
    """ASGI middleware: 413 for a body over ``max_bytes``, 415 for one that is not JSON; the body that passes is
    handed on as it came."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODILESS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_bytes):
            status, message = (413, _TOO_LARGE) if declared.strip().isdigit() else (400, "Bad Content-Length.")
            await error_response(status, message)(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            await error_response(413, _TOO_LARGE)(scope, receive, send)
            return
        content_type = headers.get("content-type")
        if (body or content_type is not None) and not is_json(content_type):
            await error_response(415, _NOT_JSON)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes ``max_bytes``."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client left; the route will see the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
