"""Last use: the access times of each ready model's files, read with ``stat`` only (never their contents), as
``hf cache ls --filter "accessed>30d"`` reads them. On a volume mounted ``noatime`` there are none to read, so
nothing is written and last use falls back to the download time (``ModelRecord.idle_since``)."""

from __future__ import annotations

import logging

from app.core import volume
from app.core.records import ModelRecord, Status, Unchanged
from app.core.store import LogEntry, Mutation
from workers.context import WorkerContext
from workers.download import cache

log = logging.getLogger(__name__)


def scan(ctx: WorkerContext) -> int:
    """Refresh ``last_used_at`` of every ready model whose files were read since; return how many changed.

    The records come from one read of the state and the changed ones are written in one pipeline, so a scan
    that finds nothing new writes nothing and one that finds 1,000 models costs about one round trip.
    """
    if volume.atime_mode(ctx.models_dir) == "noatime":
        return 0
    moved: dict[str, Mutation] = {}
    for name, raw in ctx.store.read_state().models.items():
        if raw.get("status") != Status.READY or not raw.get("commit"):
            continue
        used_at = _read(ctx, name, str(raw["repo_id"]), str(raw["commit"]))
        if used_at is not None and abs(used_at - float(raw.get("last_used_at") or 0)) >= 1.0:
            moved[name] = _used(str(raw["commit"]), used_at)
    return len(ctx.store.update_many(moved, kind="usage"))


def refresh(ctx: WorkerContext, name: str, repo_id: str, commit: str) -> float | None:
    """Read one model's last access and write it if it moved; return it (None: unchanged or not there)."""
    used_at = _read(ctx, name, repo_id, commit)
    if used_at is None:
        return None
    return used_at if ctx.update(name, _used(commit, used_at), kind="usage") is not None else None


def _read(ctx: WorkerContext, name: str, repo_id: str, commit: str) -> float | None:
    try:
        return cache.last_access(repo_id, commit, ctx.models_dir)
    except (OSError, ValueError):
        log.warning("could not read the access times of %s", name)
        return None


def _used(commit: str, used_at: float) -> Mutation:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or current.commit != commit:
            raise Unchanged
        return current.used(used_at), None

    return mutate
