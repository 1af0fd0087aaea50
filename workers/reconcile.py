"""At worker start: adopt models found on disk, flag ready models whose files vanished, sweep orphans.

Partial files are swept only when no record may resume them and they are older than
``MODELDEPOT_PARTIAL_TTL_S`` (7 days by default).
"""

from __future__ import annotations

import logging
from typing import Any

from app.core.records import ModelRecord, Status, Unchanged
from app.core.store import LogEntry
from workers.context import WorkerContext
from workers.download import cache

log = logging.getLogger(__name__)


def reconcile(ctx: WorkerContext) -> dict[str, int]:
    """Make the list agree with the models dir. Returns counts of what changed."""
    ctx.models_dir.mkdir(parents=True, exist_ok=True)
    adopted = _adopt(ctx)
    vanished = _flag_vanished(ctx)
    swept = cache.sweep_incomplete(ctx.models_dir, older_than_s=ctx.settings.partial_ttl_s,
                                   keep_repos=ctx.partial_owners())
    if adopted or vanished or swept:
        ctx.persist()
    return {"adopted": adopted, "vanished": vanished, "swept": swept}


def _adopt(ctx: WorkerContext) -> int:
    models = ctx.store.read_state().models
    known = {(m.get("repo_id"), commit) for m in models.values() for commit in _commits(m)}
    adopted = 0
    for cached in cache.scan_models(ctx.models_dir):
        if (cached.repo_id, cached.commit) in known:
            continue
        name = cached.repo_id if cached.repo_id not in models else f"{cached.repo_id}@{cached.commit}"
        if name in models:
            continue
        revision = None if name == cached.repo_id else cached.commit
        record = ModelRecord.adopted(name, cached.repo_id, revision=revision, commit=cached.commit,
                                     size_bytes=cached.size_on_disk, files=cached.nb_files,
                                     found_at=cached.last_modified)
        ctx.store.force(name, record, LogEntry("worker", f"adopted {name} found in the models dir"))
        models[name] = record.to_dict()
        adopted += 1
    return adopted


def _commits(record: dict[str, Any]) -> set[str | None]:
    """Commits a record accounts for on disk: its own, the one an update replaces, and the newest one of its
    branch (what a failed update left of it is the record's, not a model of its own)."""
    previous = record.get("update_from") or {}
    return {record.get("commit"), previous.get("commit"), record.get("latest_commit")}


def _flag_vanished(ctx: WorkerContext) -> int:
    flagged = 0
    for name, raw in ctx.store.read_state().models.items():
        if raw.get("status") != Status.READY or not raw.get("commit"):
            continue
        if cache.is_present(raw["repo_id"], raw["commit"], ctx.models_dir):
            continue
        flagged += _mark_vanished(ctx, name, raw["commit"])
    return flagged


def _mark_vanished(ctx: WorkerContext, name: str, commit: str) -> int:
    reason = "its files are gone from the models dir; Retry to download it again, or Remove it"

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None:
            raise Unchanged
        return current.broken(commit, reason, files_gone=True), LogEntry("worker", f"{name} was ready but {reason}",
                                                                         level="warning")

    return 1 if ctx.update(name, mutate) is not None else 0
