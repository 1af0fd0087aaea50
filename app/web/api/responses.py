"""How answers go out: JSON bytes made once (orjson, no second validation of what the replica holds), never cached
by a browser or proxy, and streams that no proxy buffers."""

from __future__ import annotations

from fastapi.responses import Response

NO_STORE = {"Cache-Control": "no-store"}
STREAMING = {**NO_STORE, "X-Accel-Buffering": "no"}


def json_response(body: bytes, *, status_code: int = 200) -> Response:
    """An answer of ready-made JSON bytes."""
    return Response(body, status_code=status_code, media_type="application/json", headers=NO_STORE)
