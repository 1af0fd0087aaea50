"""Room on the models volume: the quota and the disk watermarks, the bytes downloads under way have reserved,
and which models eviction removes to make room (least recently used first, never a pinned one, never one used
within ``MODELDEPOT_EVICT_MIN_IDLE_S``).

Pure arithmetic over the records and one reading of the volume (:class:`app.core.volume.Usage`): the download
job checks its room with it (under the cluster's room lock, so two downloads cannot count the same free bytes),
``modeldepot prune`` and the disk panel show what it would remove.

A download under way reserves what it has still to fetch (``bytes_total - bytes_done`` of a ``downloading``
record with a plan); a model being removed counts as already gone (its bytes are about to be freed), so two
passes never pick more than they need, nor the same bytes twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.records import Status, disk_bytes, idle_since
from app.core.settings import Settings
from app.core.units import human_age, human_bytes
from app.core.volume import Usage


@dataclass(frozen=True)
class Limits:
    """The room settings: at most ``quota`` bytes of models, at most ``high_pct`` percent of the volume used."""

    quota: int | None = None
    high_pct: float | None = None
    low_pct: float | None = None
    min_idle_s: float = 3600.0
    evict: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(quota=settings.models_quota, high_pct=settings.disk_high_watermark,
                   low_pct=settings.low_watermark, min_idle_s=settings.evict_min_idle_s, evict=settings.evict)

    @property
    def configured(self) -> bool:
        return self.quota is not None or self.high_pct is not None

    def describe(self) -> str:
        """``"quota 500.0 GB, high watermark 90%, low 80%"``, for ``status`` and the disk panel."""
        parts = []
        if self.quota is not None:
            parts.append(f"quota {human_bytes(self.quota)}")
        if self.high_pct is not None:
            parts.append(f"high watermark {self.high_pct:g}%, low {self.low_pct or self.high_pct:g}%")
        if not parts:
            return "no quota or watermark"
        mode = "evicts idle models" if self.evict else "refuses downloads that do not fit"
        return f"{', '.join(parts)}; {mode}"


@dataclass(frozen=True)
class Victim:
    """A model eviction would remove, with the bytes its removal frees and when it was last used."""

    name: str
    size_bytes: int
    idle_since: float


@dataclass(frozen=True)
class RoomPlan:
    """What a download (or a prune) needs: the bytes to free, and the models whose removal frees them."""

    need: int
    """Bytes the download has still to fetch (0 for a prune)."""
    short_by: int
    """Bytes to free before it fits (0: it fits as things are)."""
    target: int
    """Bytes eviction frees: ``short_by``, or more to bring usage under the low watermark."""
    victims: tuple[Victim, ...]
    """Least recently used first: enough to free ``target``, or every candidate when they are not enough."""
    limit: str
    """The limit that binds, in words: ``"the models quota (500.0 GB)"``."""
    available: int
    """Bytes that limit leaves for the download as things are."""
    min_idle_s: float

    @property
    def fits(self) -> bool:
        return self.short_by <= 0

    @property
    def enough(self) -> bool:
        """Whether removing ``victims`` frees at least ``short_by``."""
        return sum(v.size_bytes for v in self.victims) >= self.short_by

    def message(self, name: str, *, now: float | None = None) -> str:
        """Why ``name`` does not fit and what would make room, in words that say what to do next."""
        now = time.time() if now is None else now
        head = (f"Not enough room for {name}: it needs {human_bytes(self.need)} more, but {self.limit} leaves "
                f"{human_bytes(max(0, self.available))}.")
        listed = ", ".join(f"{v.name} ({human_bytes(v.size_bytes)}, last used {human_age(now - v.idle_since)} ago)"
                           for v in self.victims)
        if self.victims and self.enough:
            return (f"{head} Removing these least recently used unpinned models would make room: {listed}. Remove "
                    "them (or run `modeldepot prune`), or set MODELDEPOT_EVICT=true to let downloads evict them, "
                    "then retry.")
        freed = human_bytes(sum(v.size_bytes for v in self.victims))
        unused = f"unused for {human_age(self.min_idle_s)}"
        which = f" ({listed})" if listed else ""
        return (f"{head} Even removing every unpinned model {unused}{which} would free only {freed}. Remove or "
                "unpin other models, raise MODELDEPOT_MODELS_QUOTA or grow the volume, then retry.")


def reserved_bytes(records: Iterable[Mapping[str, Any]], *, exclude: str = "") -> int:
    """Bytes downloads under way have still to fetch (their reservation), except ``exclude``'s."""
    return sum(max(0, int(r.get("bytes_total") or 0) - int(r.get("bytes_done") or 0)) for r in records
               if r.get("status") == Status.DOWNLOADING and r.get("name") != exclude)


def freeing_bytes(records: Iterable[Mapping[str, Any]]) -> int:
    """Bytes of models being removed: about to be freed, so not counted as used."""
    return sum(disk_bytes(r) for r in records if r.get("status") == Status.REMOVING)


def eviction_order(records: Iterable[Mapping[str, Any]], *, min_idle_s: float, now: float,
                   skip_repo: str | None = None) -> list[Victim]:
    """Ready, unpinned models unused for ``min_idle_s``, least recently used first (never ``skip_repo``'s,
    whose blobs the download may share)."""
    victims = []
    for record in records:
        if record.get("status") != Status.READY or record.get("pinned") or record.get("repo_id") == skip_repo:
            continue
        since = idle_since(record)
        if now - since >= min_idle_s:
            victims.append(Victim(str(record.get("name")), disk_bytes(record), since))
    return sorted(victims, key=lambda v: (v.idle_since, v.name))


def plan_room(name: str, need: int, usage: Usage, records: Iterable[Mapping[str, Any]], limits: Limits, *,
              repo_id: str | None = None, now: float | None = None) -> RoomPlan:
    """Whether a download still needing ``need`` bytes fits, and what eviction would remove to make it fit and
    bring usage under the low watermark (the free space of the volume always counts, limits or not)."""
    rows = list(records)
    delta = reserved_bytes(rows, exclude=name) + need - freeing_bytes(rows)
    short_of_free = delta - usage.free
    free = (short_of_free, "the free space of the volume", excess_left(need, short_of_free))
    excesses: list[tuple[float, str, int]] = [free]
    target = 0
    if limits.quota is not None:
        excess = usage.models_bytes + delta - limits.quota
        excesses.append((excess, f"the models quota ({human_bytes(limits.quota)})", excess_left(need, excess)))
    if limits.high_pct is not None and usage.total:
        over_high = int(usage.used + delta - usage.total * limits.high_pct / 100)
        label = f"the high watermark ({limits.high_pct:g}% of {human_bytes(usage.total)})"
        excesses.append((over_high, label, excess_left(need, over_high)))
        if over_high > 0:
            target = int(usage.used + delta - usage.total * (limits.low_pct or limits.high_pct) / 100)
    return _plan(need, excesses, target, rows, limits, repo_id, now)


def plan_prune(usage: Usage, records: Iterable[Mapping[str, Any]], limits: Limits, *,
               now: float | None = None) -> RoomPlan:
    """What ``modeldepot prune`` removes: enough to bring the models within the quota and the volume under the
    low watermark, with no download waiting (the same order and rules as eviction)."""
    rows = list(records)
    delta = reserved_bytes(rows) - freeing_bytes(rows)
    excesses: list[tuple[float, str, int]] = []
    if limits.quota is not None:
        excess = usage.models_bytes + delta - limits.quota
        excesses.append((excess, f"the models quota ({human_bytes(limits.quota)})", -excess))
    if limits.low_pct is not None and usage.total:
        excess = int(usage.used + delta - usage.total * limits.low_pct / 100)
        excesses.append((excess, f"the low watermark ({limits.low_pct:g}% of {human_bytes(usage.total)})", -excess))
    return _plan(0, excesses, 0, rows, limits, None, now)


def excess_left(need: int, excess: float) -> int:
    """What a limit exceeded by ``excess`` (with the download's ``need`` counted) leaves for the download."""
    return int(need - excess)


def _plan(need: int, excesses: Sequence[tuple[float, str, int]], target: int, rows: list[Mapping[str, Any]],
          limits: Limits, repo_id: str | None, now: float | None) -> RoomPlan:
    now = time.time() if now is None else now
    excess, limit, available = max(excesses, key=lambda e: e[0]) if excesses else (0, "no limit", need)
    short_by = max(0, int(excess))
    target = max(short_by, target)
    victims: list[Victim] = []
    if target > 0:
        freed = 0
        for victim in eviction_order(rows, min_idle_s=limits.min_idle_s, now=now, skip_repo=repo_id):
            if freed >= target:
                break
            victims.append(victim)
            freed += victim.size_bytes
    return RoomPlan(need=need, short_by=short_by, target=target, victims=tuple(victims), limit=limit,
                    available=available, min_idle_s=limits.min_idle_s)
