"""Last use: the access times of each ready model's files, read with ``stat`` only (never their contents), as
``hf cache ls --filter "accessed>30d"`` reads them. On a volume mounted ``noatime`` there are none to read, so
nothing is written and last use falls back to the download time (``ModelRecord.idle_since``)."""

from __future__ import annotations

import logging

from app.core import volume
from app.core.records import ModelRecord, Status, Unchanged
from app.core.store import LogEntry
from workers.context import WorkerContext
from workers.download import cache

log = logging.getLogger(__name__)


def scan(ctx: WorkerContext) -> int:
    """Refresh ``last_used_at`` of every ready model; return how many records changed."""
    if volume.atime_mode(ctx.models_dir) == "noatime":
        return 0
    changed = 0
    for name, raw in ctx.store.read_state().models.items():
        if raw.get("status") == Status.READY and raw.get("commit"):
            changed += refresh(ctx, name, str(raw["repo_id"]), str(raw["commit"])) is not None
    return changed


def refresh(ctx: WorkerContext, name: str, repo_id: str, commit: str) -> float | None:
    """Read one model's last access and write it if it moved; return it (None: unchanged or not there)."""
    try:
        used_at = cache.last_access(repo_id, commit, ctx.models_dir)
    except (OSError, ValueError):
        log.warning("could not read the access times of %s", name)
        return None
    if used_at is None:
        return None

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.commit != commit:
            raise Unchanged
        return current.used(used_at), None

    return used_at if ctx.update(name, mutate, kind="usage") is not None else None
