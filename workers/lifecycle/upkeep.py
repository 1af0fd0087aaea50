"""The upkeep thread every worker runs: the usage scan every ``MODELDEPOT_USAGE_SCAN_S`` and the update checks
due every ``MODELDEPOT_UPDATE_CHECK_S``, spread over that interval, by one worker at a time across the cluster.

Each tick, the worker that takes the turn checks the ``ceil(n * tick / interval)`` least recently checked of the
``n`` models that follow a branch whose last check is older than the interval, so 1,000 models are checked one
or two at a time through the six hours rather than in one burst; a model never checked (just downloaded) is
due at once.
"""

from __future__ import annotations

import logging
import math
import time

from app.core.records import ModelRecord, Status
from app.core.settings import Settings
from workers.context import WorkerContext
from workers.lifecycle import updates, usage
from workers.turns import TurnLoop

log = logging.getLogger(__name__)

_MAX_TICK_S = 5.0


class Upkeep(TurnLoop):
    what = "upkeep pass"

    def __init__(self, ctx: WorkerContext, *, tick: float | None = None) -> None:
        super().__init__(name="modeldepot-upkeep", tick=tick if tick is not None else tick_for(ctx.settings))
        self.ctx = ctx

    def take_turn(self) -> bool:
        return self.ctx.store.take_upkeep_turn(self.tick)

    def run_once(self, *, now: float | None = None) -> None:
        settings = self.ctx.settings
        if self.ctx.store.usage_scan_due(settings.usage_scan_s):
            changed = usage.scan(self.ctx)
            log.debug("usage scan: %d models' last use changed", changed)
        if settings.update_check_s > 0:
            names = due_checks(self.ctx, interval_s=settings.update_check_s, tick_s=self.tick, now=now)
            if names:
                updates.check_models(self.ctx, names, sleep=self.pause)


def tick_for(settings: Settings) -> float:
    """Seconds between upkeep turns: 5, or less when a scan or check interval is shorter than that."""
    intervals = [_MAX_TICK_S, settings.usage_scan_s]
    if settings.update_check_s > 0:
        intervals.append(settings.update_check_s)
    return max(0.1, min(intervals))


def due_checks(ctx: WorkerContext, *, interval_s: float, tick_s: float, now: float | None = None) -> list[str]:
    """The models to check this tick: the least recently checked of those due, a share that spreads them all
    over ``interval_s``."""
    now = time.time() if now is None else now
    followed = [m for m in (ModelRecord.model_validate(raw) for raw in ctx.store.read_state().models.values())
                if m.status is Status.READY and m.follows_branch]
    due = sorted((m for m in followed if m.checked_at is None or now - m.checked_at >= interval_s),
                 key=lambda m: (m.checked_at or 0.0, m.name))
    share = max(1, math.ceil(len(followed) * tick_s / interval_s))
    return [m.name for m in due[:share]]
