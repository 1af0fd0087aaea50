"""Marking the models quota eviction removes: ``ready -> removing`` as ``modeldepot (quota)``, only if the model is
still ready, unpinned and idle when the mark is written (a model used or pinned meanwhile is skipped). The removal
itself is the normal removal job, which calls the eviction off if the model is used before its files go."""

from __future__ import annotations

import time

from app.core.quota import Victim
from app.core.records import ModelRecord, Unchanged
from app.core.store import Change, LogEntry, Store
from app.core.units import human_age, human_bytes

EVICTOR = "modeldepot (quota)"
"""Who the event log names for evictions."""


def mark(store: Store, victim: Victim, job_id: str, *, reason: str, min_idle_s: float) -> Change | None:
    """Mark ``victim`` for removal by job ``job_id``; None if it is no longer ready, unpinned and idle."""
    now = time.time()

    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None or now - current.idle_since < min_idle_s:
            raise Unchanged
        line = (f"evicting {victim.name} ({human_bytes(victim.size_bytes)}, last used "
                f"{human_age(now - current.idle_since)} ago) {reason}")
        return current.evicting(job_id, at=now), LogEntry(EVICTOR, line)

    return store.update(victim.name, mutate)
