"""The disk panel: the models volume's figures when this process can see it, else the list's own sum."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from app.core.records import RecordView, disk_bytes
from app.core.units import human_bytes
from app.web.ui.format import percent
from app.web.ui.models_table import BAR_CSS

log = logging.getLogger(__name__)

DISK_CSS = BAR_CSS + """
.md-disk .md-bar { height: .8em; max-width: 30em; }
.md-disk p { margin: .2em 0; }
"""


def read_usage(controller: object) -> Mapping[str, int] | None:
    """``controller.disk_usage()`` if the controller offers it and the volume is mounted here, else None."""
    method = getattr(controller, "disk_usage", None)
    if not callable(method):
        return None
    try:
        usage = method()
    except Exception:
        log.warning("could not read disk usage", exc_info=True)
        return None
    if not isinstance(usage, Mapping):
        return None
    try:
        return {k: int(usage.get(k, 0)) for k in ("total", "used", "free", "models_bytes", "partial_bytes")}
    except (KeyError, TypeError, ValueError):
        return None


def render_disk(usage: Mapping[str, int] | None, records: Sequence[RecordView]) -> str:
    """HTML for the disk panel."""
    listed = sum(disk_bytes(r) for r in records)
    listed_line = f"<p>Models in the list take {human_bytes(listed)}.</p>"
    if usage is None:
        return (f'<div class="md-disk">{listed_line}<p class="md-muted">Free space is not shown: the models '
                "volume is not mounted on this UI worker.</p></div>")
    pct = percent(usage["used"], usage["total"])
    return (f'<div class="md-disk"><div class="md-bar" role="progressbar" aria-valuemin="0" '
            f'aria-valuemax="100" aria-valuenow="{pct:.0f}"><span style="width:{pct:.1f}%"></span></div>'
            f"<p>{human_bytes(usage['free'])} free of {human_bytes(usage['total'])} "
            f"({pct:.0f}% used); models take {human_bytes(usage['models_bytes'])}.</p>{listed_line}"
            f"{_partial_line(usage.get('partial_bytes', 0))}</div>")


def _partial_line(partial: int) -> str:
    if partial <= 0:
        return ""
    return (f"<p>{human_bytes(partial)} in partial files (paused, failed or running downloads: Resume or "
            "Retry continues them, Cancel or Remove deletes them).</p>")
