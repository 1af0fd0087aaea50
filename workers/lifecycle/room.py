"""A download's room on the volume, checked and reserved before any byte is fetched.

Under the cluster's room lock (one holder at a time, so two downloads cannot count the same free bytes): read
the volume and every record, and see whether the bytes still to fetch fit the free space, the models quota and
the high watermark, counting what downloads under way still have to fetch. If not, either refuse (the default)
with a message naming what would make room, or (``MODELDEPOT_EVICT=true``) remove the least recently used idle
unpinned models through the normal removal path, down to the low watermark. The plan is written to the record
before the lock is released: from then on its ``bytes_total - bytes_done`` is its reservation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from app.core import eviction, volume
from app.core.errors import NoRoomError
from app.core.jobqueue import new_job_id
from app.core.quota import Limits, RoomPlan, Victim, plan_room
from workers import removal
from workers.context import WorkerContext
from workers.download import cache
from workers.download.plan import DownloadPlan
from workers.lifecycle import usage

log = logging.getLogger(__name__)

_ROUNDS = 3
"""Eviction passes before giving up (the bytes a removal frees may be fewer than the records said)."""
_LOCK_WAIT_S = 600.0


def reserve(ctx: WorkerContext, name: str, plan: DownloadPlan, *, record_plan: Callable[[], None]) -> None:
    """Make sure ``plan`` fits, evicting if allowed, then ``record_plan()`` (its reservation), all under the lock.

    Raises:
        NoRoomError: it does not fit and eviction is off or cannot make room; nothing was fetched.
    """
    limits = Limits.from_settings(ctx.settings)
    need = max(0, plan.bytes_needed - cache.partial_bytes(plan.repo_id, ctx.models_dir))
    with ctx.store.holding_room(wait_s=_LOCK_WAIT_S):
        for _ in range(_ROUNDS):
            room = _room(ctx, name, need, plan.repo_id, limits)
            if room.fits:
                break
            if not (limits.evict and room.enough) or not _evict(ctx, room.victims, name, limits):
                raise NoRoomError(room.message(name))
        else:
            raise NoRoomError(_room(ctx, name, need, plan.repo_id, limits).message(name))
        record_plan()


def _room(ctx: WorkerContext, name: str, need: int, repo_id: str, limits: Limits) -> RoomPlan:
    records = ctx.store.read_state().models.values()
    return plan_room(name, need, volume.usage(ctx.models_dir), records, limits, repo_id=repo_id)


def _evict(ctx: WorkerContext, victims: Iterable[Victim], for_name: str, limits: Limits) -> int:
    """Remove ``victims`` oldest use first, each through the normal removal path; return how many went."""
    gone = 0
    for victim in victims:
        if _used_lately(ctx, victim, limits):
            continue
        job_id = new_job_id("rm")
        change = eviction.mark(ctx.store, victim, job_id, reason=f"to make room for {for_name}",
                               min_idle_s=limits.min_idle_s)
        if change is None:
            continue
        # Removed here, not queued: with one worker the maintenance queue would wait for this very job.
        gone += removal.remove(ctx, victim.name, job_id) is not None
    return gone


def _used_lately(ctx: WorkerContext, victim: Victim, limits: Limits) -> bool:
    """Read the victim's access times now (the usage scan may be minutes old); True if it was used within the
    idle time, which is then written to its record."""
    record = ctx.store.get(victim.name)
    if record is None or record.commit is None:
        return True
    used_at = usage.refresh(ctx, victim.name, record.repo_id, record.commit)
    return used_at is not None and time.time() - used_at < limits.min_idle_s
