"""The page's 0.5 s poll: a browser-side timer and the bare route it calls, ``GET /api/state-version``.

The route answers ``{"version": N, "structural": M, "in_sync": bool}`` from this worker's replica: memory only,
no Redis call, no session lookup, on the event loop, outside Gradio. It is public on purpose: it reveals what
``/readyz`` already shows to anyone, and checking the session cookie would add a Redis read every few seconds
per page.

The timer (:data:`POLL_JS`, run once when the page loads) compares that answer with the head the page shows
(the hidden ``#md-shown-view``, written by every rendering of the view) and, only when they differ, clicks
the hidden ``#md-sync`` button: one Gradio event that renders the view (:meth:`app.web.ui.live.LiveView.sync`).
It clicks at once when more than progress changed (``structural`` is the last version that was not a progress
tick), else at most once per :data:`PROGRESS_SECONDS`, which halves the renders while downloads run.
Comparing with what the page *shows*, not with the last answer, heals a rendering served by a worker whose
replica lagged behind: the next poll sees the difference again and clicks again. Every request is stateless,
so the page works behind a plain round-robin balancer.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import Response

from app.core.controller import Controller

POLL_SECONDS = 0.5
PROGRESS_SECONDS = 1.0  # a change that is only download progress re-renders at most this often
VERSION_PATH = "/api/state-version"
SYNC_ID = "md-sync"
SHOWN_VIEW_ID = "md-shown-view"

_POLL_BODY = """
  if (window.mdPoll) return;
  window.mdPoll = true;
  const url = new URL(cfg.path, document.baseURI).href;
  const shown = () => {
    const box = document.querySelector(`#${cfg.shown} textarea, #${cfg.shown} input`);
    return box ? box.value : "";
  };
  let busy = false, lastClick = 0, lastStructural = null;
  const poll = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const reply = await fetch(url, {cache: "no-store"});
      if (reply.ok) {
        const state = await reply.json();
        const now = Date.now();
        const structural = state.structural !== lastStructural;
        if (`${state.version}.${state.in_sync ? 1 : 0}` !== shown()
            && (structural || now - lastClick >= cfg.progress)) {
          lastClick = now;
          lastStructural = state.structural;
          document.getElementById(cfg.sync)?.click();
        }
      }
    } catch (e) {
      // a worker restarting or the balancer busy: the next period tries again
    } finally {
      busy = false;
    }
  };
  setInterval(poll, cfg.period);
  document.addEventListener("visibilitychange", poll);
"""
_POLL_CONFIG = {"path": VERSION_PATH.lstrip("/"), "shown": SHOWN_VIEW_ID, "sync": SYNC_ID,
                "period": int(POLL_SECONDS * 1000), "progress": int(PROGRESS_SECONDS * 1000)}
POLL_JS = "() => {\n  const cfg = " + json.dumps(_POLL_CONFIG) + ";" + _POLL_BODY + "}"
"""Started once when the page loads. The URL is relative, so the page also works under a path prefix added
by a proxy. Polls pause while the tab is hidden and resume at once when it shows again."""


def head(version: int, in_sync: bool) -> str:
    """What the page compares: ``"<version>.<1 if in sync else 0>"`` (the view writes the same string)."""
    return f"{version}.{int(in_sync)}"


def needs_render(current: str, shown: str, *, structural: int, last_structural: int | None,
                 since_last_render: float) -> bool:
    """The timer's rule (:data:`POLL_JS` runs the same in the browser; ``bench/bench_ui.py`` plays it for 200
    pages): render when the head differs from what the page shows, at once if more than progress changed, else
    at most once per :data:`PROGRESS_SECONDS`."""
    if current == shown:
        return False
    return structural != last_structural or since_last_render >= PROGRESS_SECONDS


def version_router(controller: Controller) -> APIRouter:
    """``GET /api/state-version``; include it in the app before the page is mounted at ``/``."""
    router = APIRouter()

    @router.get(VERSION_PATH, include_in_schema=False)
    async def state_version() -> Response:  # async: answered on the event loop, no thread hop
        body = (f'{{"version":{controller.version},"structural":{controller.structural_version},'
                f'"in_sync":{"true" if controller.in_sync else "false"}}}')
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    return router
