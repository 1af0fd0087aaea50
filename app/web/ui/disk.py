"""The disk panel: the models volume against its limits (quota bar, watermarks), the largest models, partial files
and what eviction would take next, when this process mounts the volume; else the list's own sum.

It renders :meth:`Controller.room` and the records; the arithmetic is the core's (:mod:`app.core.quota`).
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from app.core.controller import Pruned, Room
from app.core.quota import Limits, Victim
from app.core.records import RecordView, disk_bytes
from app.core.units import human_age, human_bytes
from app.web.ui.format import percent
from app.web.ui.models_table import BAR_CSS

TOP_MODELS = 5
"""How many of the largest models the panel lists with their share."""
NOATIME_NOTE = ("The models volume is mounted noatime: last use falls back to download time, so eviction "
                "and the “last used” column see when a model was downloaded, not when it was read.")

DISK_CSS = BAR_CSS + """
.md-disk .md-bar { height: .8em; max-width: 30em; position: relative; }
.md-disk .md-bar.md-over > span { background: #b91c1c; }
.md-disk .md-mark { position: absolute; top: 0; bottom: 0; width: 2px; background: #a16207; }
.md-disk p { margin: .2em 0; }
.md-disk .md-warn { color: #a16207; }
.md-disk ol.md-share { margin: .2em 0 .4em; padding-left: 1.4em; font-size: .9em; }
.md-disk ol.md-share .md-bar { height: .4em; max-width: 20em; }
"""


def render_disk(room: Room | None, records: Sequence[RecordView], *, now: float | None = None) -> str:
    """HTML for the disk panel (``room`` None: the volume is not mounted on this UI worker)."""
    listed = sum(disk_bytes(r) for r in records)
    listed_line = f"<p>Models in the list take {human_bytes(listed)}.</p>"
    if room is None:
        return (f'<div class="md-disk">{listed_line}<p class="md-muted">Free space is not shown: the models '
                "volume is not mounted on this UI worker.</p></div>")
    now = time.time() if now is None else now
    usage, limits = room.usage, room.limits
    parts = [_volume_html(room), _quota_html(room), listed_line, _partial_line(usage.partial_bytes),
             _limits_html(limits), _prune_html(room), _victims_html(room, now),
             _share_html(records, max(usage.models_bytes, listed))]
    if room.atime_mode == "noatime":
        parts.append(f'<p class="md-muted">{html.escape(NOATIME_NOTE)}</p>')
    return f'<div class="md-disk">{"".join(parts)}</div>'


def _bar(pct: float, *, over: bool = False, marks: Sequence[tuple[float, str]] = ()) -> str:
    ticks = "".join(f'<i class="md-mark" style="left:{min(100.0, at):.1f}%" title="{html.escape(label)}"></i>'
                    for at, label in marks)
    return (f'<div class="md-bar{" md-over" if over else ""}" role="progressbar" aria-valuemin="0" '
            f'aria-valuemax="100" aria-valuenow="{pct:.0f}"><span style="width:{pct:.1f}%"></span>{ticks}</div>')


def _volume_html(room: Room) -> str:
    usage, limits = room.usage, room.limits
    pct = usage.percent_used()
    marks: list[tuple[float, str]] = []
    watermarks = ""
    if limits.high_pct is not None:
        low = limits.low_pct if limits.low_pct is not None else limits.high_pct
        marks = [(limits.high_pct, f"high watermark {limits.high_pct:g}%"), (low, f"low watermark {low:g}%")]
        watermarks = f"; high watermark {limits.high_pct:g}%, low {low:g}%"
    over = limits.high_pct is not None and pct >= limits.high_pct
    return (f'<div class="md-volume">{_bar(pct, over=over, marks=marks)}</div>'
            f"<p>{human_bytes(usage.free)} free of {human_bytes(usage.total)} ({pct:.0f}% used{watermarks}); "
            f"models take {human_bytes(usage.models_bytes)}.</p>")


def _quota_html(room: Room) -> str:
    quota = room.limits.quota
    if quota is None:
        return ""
    used = room.usage.models_bytes
    share = f" ({100.0 * used / quota:.0f}%)" if quota else ""
    return (f'<div class="md-quota">{_bar(percent(used, quota) if quota else 100.0, over=used >= quota)}</div>'
            f"<p>Models take {human_bytes(used)} of the {human_bytes(quota)} quota{share}.</p>")


def _limits_html(limits: Limits) -> str:
    if not limits.configured:
        return ('<p class="md-muted">No models quota or disk watermark is set (MODELDEPOT_MODELS_QUOTA, '
                "MODELDEPOT_DISK_HIGH_WATERMARK): downloads only need free space, nothing is evicted.</p>")
    return f'<p class="md-muted">Limits: {html.escape(limits.describe())}.</p>'


def _prune_html(room: Room) -> str:
    plan = room.prune
    if not plan.victims:
        return ""
    freed = sum(v.size_bytes for v in plan.victims)
    return (f'<p class="md-warn">Over {html.escape(plan.limit)}: a prune would now remove '
            f"{html.escape(_names(plan.victims))}, freeing {human_bytes(freed)}.</p>")


def _victims_html(room: Room, now: float) -> str:
    limits = room.limits
    if not limits.configured:
        return ""
    label = "Evicted next" if limits.evict else "Removed first by a prune"
    if not room.next_victims:
        return (f'<p class="md-muted">{label}: nothing; every ready model is pinned or was used within the last '
                f"{html.escape(human_age(limits.min_idle_s))}.</p>")
    listed = ", ".join(f"{v.name} ({human_bytes(v.size_bytes)}, idle {human_age(now - v.idle_since)})"
                       for v in room.next_victims)
    return f"<p>{label}: {html.escape(listed)}.</p>"


def _share_html(records: Sequence[RecordView], total: int) -> str:
    """The largest models and their share of the models' bytes."""
    sized = sorted(((disk_bytes(r), str(r.get("name", ""))) for r in records), key=lambda p: (-p[0], p[1]))
    top = [(size, name) for size, name in sized[:TOP_MODELS] if size > 0]
    if not top or total <= 0:
        return ""
    items = "".join(f"<li>{html.escape(name)}: {human_bytes(size)} · {percent(size, total):.0f}%"
                    f"{_bar(percent(size, total))}</li>" for size, name in top)
    rest = [size for size, _ in sized[TOP_MODELS:] if size > 0]
    more = f'<p class="md-muted">and {len(rest)} more taking {human_bytes(sum(rest))}.</p>' if rest else ""
    return f'<p>Largest models:</p><ol class="md-share">{items}</ol>{more}'


def _partial_line(partial: int) -> str:
    if partial <= 0:
        return ""
    return (f"<p>{human_bytes(partial)} in partial files (paused, failed or running downloads: Resume or "
            "Retry continues them, Cancel or Remove deletes them).</p>")


def _names(victims: Sequence[Victim]) -> str:
    return ", ".join(f"{v.name} ({human_bytes(v.size_bytes)})" for v in victims)


def prune_message(pruned: Pruned) -> str:
    """What a prune did or would do, in one sentence (the API's ``message``)."""
    plan = pruned.plan
    if not plan.victims:
        return "Nothing to prune: the models are within their quota and the volume under its low watermark."
    freed = human_bytes(sum(v.size_bytes for v in plan.victims))
    short = "" if plan.enough else f" That is not enough for {plan.limit}: remove or unpin other models."
    if pruned.dry_run:
        return f"A prune would remove {_names(plan.victims)}, freeing {freed}.{short}"
    if not pruned.removing:
        return "Nothing was removed: every model the plan picked was used, pinned or removed meanwhile."
    skipped = [v.name for v in plan.victims if v.name not in pruned.removing]
    kept = f" Skipped (used, pinned or removed meanwhile): {', '.join(skipped)}." if skipped else ""
    return f"Removing {', '.join(pruned.removing)} to free up to {freed}.{kept}{short}"
