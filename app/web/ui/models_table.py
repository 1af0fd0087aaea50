"""The models table: filter, sort and page the records, and render them as HTML with progress bars, update badges,
pins and last use."""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.records import RecordView, Status, disk_bytes, idle_since, retry_text
from app.core.units import human_age, human_bytes, human_duration
from app.web.ui.format import human_speed, percent, short_commit, timestamp

PAGE_SIZE = 50
ALL = "all"
ACTIVE = "active"
OUTDATED = "update available"
PINNED = "pinned"
DAY = 86400.0
IDLE_FILTERS = {"idle > 7 days": 7 * DAY, "idle > 30 days": 30 * DAY, "idle > 90 days": 90 * DAY}
"""Ready models not used for that long (the models eviction and a prune consider)."""
STATUS_FILTERS = (ALL, ACTIVE, Status.QUEUED, Status.DOWNLOADING, Status.PAUSED, Status.READY, Status.FAILED,
                  Status.CANCELLED, Status.REMOVING, OUTDATED, PINNED, *IDLE_FILTERS)
LAST_USED = "last used"
"""Least recently used first: the order eviction and a prune remove models in."""
SORTS = ("name", "status", "size", "newest", LAST_USED)
EXAMPLE_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"

_ACTIVE = frozenset({Status.QUEUED, Status.DOWNLOADING, Status.REMOVING})
_SORT_ORDER = (Status.DOWNLOADING, Status.QUEUED, Status.REMOVING, Status.PAUSED, Status.FAILED, Status.CANCELLED,
               Status.READY)
_STATUS_ORDER: dict[str, int] = {s: i for i, s in enumerate(_SORT_ORDER)}

BAR_CSS = """
.md-bar { height: .6em; min-width: 8em; background: var(--background-fill-secondary);
  border-radius: 4px; overflow: hidden; border: 1px solid var(--border-color-primary); }
.md-bar > span { display: block; height: 100%; background: #2563eb; }
.md-muted { opacity: .6; }
"""

TABLE_CSS = BAR_CSS + """
.md-summary { margin: 0 0 .4em; opacity: .8; }
.md-empty { padding: 1.2em; border: 1px dashed var(--border-color-primary); border-radius: 8px; }
table.md-models { width: 100%; border-collapse: collapse; font-size: .92em; border: none; }
table.md-models th, table.md-models td { text-align: left; padding: .35em .5em; vertical-align: top;
  border-bottom: 1px solid var(--border-color-primary); }
table.md-models tbody tr { cursor: pointer; }
table.md-models tbody tr:hover { background: var(--background-fill-secondary); }
.md-status { font-weight: 600; white-space: nowrap; }
.md-status-ready { color: #15803d; } .md-status-failed { color: #b91c1c; }
.md-status-downloading, .md-status-queued { color: #1d4ed8; } .md-status-removing { color: #a16207; }
.md-status-paused { color: #7c3aed; }
.md-error { color: #b91c1c; font-size: .9em; max-width: 28em; white-space: pre-wrap; }
.md-progress-text { font-size: .85em; opacity: .85; white-space: nowrap; }
code.md-commit { font-size: .9em; }
.md-badge { display: inline-block; font-size: .8em; padding: 0 .4em; margin: .15em .3em 0 0; border-radius: 4px;
  white-space: nowrap; border: 1px solid currentColor; }
.md-badge-update { color: #1d4ed8; } .md-badge-updating { color: #7c3aed; } .md-badge-pin { color: #a16207; }
.md-warn { color: #a16207; font-size: .9em; max-width: 28em; white-space: pre-wrap; }
"""

ROW_CLICK_JS = """
element.addEventListener('click', (event) => {
  const row = event.target.closest('tr[data-name]');
  if (row) { trigger('click', {name: row.dataset.name}); }
});
"""


@dataclass(frozen=True)
class TableQuery:
    """What a user asked to see: a name filter, a status filter, an order and a page (1-based)."""

    text: str = ""
    status: str = ALL
    sort: str = "name"
    page: int = 1

    @classmethod
    def of(cls, text: str | None, status: str | None, sort: str | None, page: float | None) -> TableQuery:
        """A query from raw component values, falling back to defaults for anything unexpected."""
        return cls(text=(text or "").strip()[:200], status=status if status in STATUS_FILTERS else ALL,
                   sort=sort if sort in SORTS else "name", page=max(1, int(page or 1)))


def _matches(record: RecordView, query: TableQuery, now: float) -> bool:
    if query.text and query.text.lower() not in str(record.get("name", "")).lower():
        return False
    status = record.get("status")
    if query.status == ACTIVE:
        return status in _ACTIVE
    if query.status == OUTDATED:
        return bool(record.get("update_available"))
    if query.status == PINNED:
        return bool(record.get("pinned"))
    if query.status in IDLE_FILTERS:
        return status == Status.READY and now - idle_since(record) > IDLE_FILTERS[query.status]
    return query.status == ALL or status == query.status


def _sort_key(sort: str) -> Callable[[RecordView], Any]:
    if sort == "status":
        return lambda r: (_STATUS_ORDER.get(r.get("status", ""), 99), r.get("name", ""))
    if sort == "size":
        return lambda r: (-disk_bytes(r), r.get("name", ""))
    if sort == "newest":
        return lambda r: (-(r.get("requested_at") or 0), r.get("name", ""))
    if sort == LAST_USED:
        return lambda r: (idle_since(r), r.get("name", ""))
    return lambda r: str(r.get("name", "")).lower()


def select(records: Sequence[RecordView], query: TableQuery, *,
           now: float | None = None) -> tuple[list[RecordView], int, int]:
    """The rows of the requested page, how many records matched, and the number of pages."""
    now = time.time() if now is None else now
    matched = sorted((r for r in records if _matches(r, query, now)), key=_sort_key(query.sort))
    pages = max(1, -(-len(matched) // PAGE_SIZE))
    page = min(query.page, pages)
    return matched[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], len(matched), pages


# ---- rendering -----------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def progress_html(record: RecordView) -> str:
    """A progress bar with percent, bytes, speed and ETA for a download; a short note otherwise."""
    status = record.get("status")
    if status == Status.QUEUED:
        attempt = int(record.get("attempt") or 0)
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        return f'<span class="md-muted">waiting for a worker{retry}</span>'
    if status == Status.PAUSED:
        done, total = int(record.get("bytes_done") or 0), int(record.get("bytes_total") or 0)
        return f'<span class="md-muted">paused at {percent(done, total):.0f}% · {_sizes(done, total)}</span>'
    if status != Status.DOWNLOADING:
        return ""
    return _download_html(record)


def _sizes(done: int, total: int) -> str:
    return f"{human_bytes(done)} / {human_bytes(total)}" if total else f"{human_bytes(done)} / ?"


def _download_html(record: RecordView) -> str:
    done, total = int(record.get("bytes_done") or 0), int(record.get("bytes_total") or 0)
    pct = percent(done, total)
    files = ""
    if record.get("files_total"):
        files = f" · {int(record.get('files_done') or 0)}/{int(record['files_total'])} files"
    pace = retry_text(record) or f"{human_speed(record.get('speed_bps'))} · ETA {human_duration(record.get('eta_s'))}"
    stopping = " · cancelling…" if record.get("cancel_requested") else ""
    if record.get("pause_requested") and not stopping:
        stopping = " · pausing…"
    return (f'<div class="md-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            f'aria-valuenow="{pct:.0f}"><span style="width:{pct:.1f}%"></span></div>'
            f'<div class="md-progress-text">{pct:.0f}% · {_sizes(done, total)} · {_e(pace)}{files}{stopping}</div>')


def status_html(record: RecordView) -> str:
    """The status, its update badge, and the reasons of a failure, a failed update or a failed update check."""
    status = str(record.get("status", "?"))
    cell = f'<span class="md-status md-status-{_e(status)}">{_e(status)}</span>'
    badge = update_badge(record)
    if badge:
        cell += f'<div><span class="md-badge md-badge-{badge[0]}">{_e(badge[1])}</span></div>'
    if record.get("error") and status in (Status.FAILED, Status.CANCELLED):
        cell += f'<div class="md-error">{_e(record["error"])}</div>'
    return cell + _lifecycle_notes(record)


def update_badge(record: RecordView) -> tuple[str, str] | None:
    """``("updating", "updating b5dbad1 → 9f3c2e0")`` while an update is under way, ``("update", "update: b5dbad1 →
    9f3c2e0")`` when the last check found a newer commit of the branch, else None."""
    previous = record.get("update_from")
    if isinstance(previous, dict):
        old = str(previous.get("commit") or "")
        new = next((c for c in (record.get("commit"), record.get("latest_commit")) if c and c != old), None)
        target = short_commit(new) if new else f"the newest commit of {record.get('revision') or 'main'}"
        return "updating", f"updating {short_commit(old)} → {target}"
    if record.get("update_available") and record.get("latest_commit"):
        return "update", f"update: {short_commit(record.get('commit'))} → {short_commit(record.get('latest_commit'))}"
    return None


def _lifecycle_notes(record: RecordView) -> str:
    """Why the last update or update check failed, and an eviction under way; the status itself is unchanged."""
    notes = ""
    if record.get("update_error"):
        notes += (f'<div class="md-error">update failed, still at {_e(short_commit(record.get("commit")))}: '
                  f'{_e(record["update_error"])}</div>')
    if record.get("check_error"):
        notes += f'<div class="md-warn">update check failed: {_e(record["check_error"])}</div>'
    if record.get("status") == Status.REMOVING and record.get("evicted_at"):
        notes += '<div class="md-warn">evicted to make room (models quota or disk watermark)</div>'
    return notes


def last_used_html(record: RecordView, now: float) -> str:
    """How long ago the model was used; the download time (greyed) while no use was read; "never" if neither."""
    if record.get("last_used_at"):
        return f"{human_age(now - idle_since(record))} ago"
    if record.get("finished_at"):
        return (f'<span class="md-muted" title="no access read yet: this is when it was downloaded">'
                f"{human_age(now - idle_since(record))} ago</span>")
    return '<span class="md-muted">never</span>'


def _model_html(record: RecordView) -> str:
    name = _e(record.get("repo_id") or record.get("name", ""))
    if not record.get("pinned"):
        return name
    return f'{name} <span class="md-badge md-badge-pin" title="pinned: eviction never removes it">pinned</span>'


def row_html(record: RecordView, now: float | None = None) -> str:
    now = time.time() if now is None else now
    size = disk_bytes(record)
    requested = " · ".join(p for p in (_e(record.get("requested_by") or ""),
                                       _e(timestamp(record.get("requested_at")))) if p)
    return (f'<tr data-name="{_e(record.get("name", ""))}" data-status="{_e(record.get("status", ""))}">'
            f"<td>{_model_html(record)}</td>"
            f'<td>{_e(record.get("revision") or "main")}</td>'
            f'<td><code class="md-commit">{_e(short_commit(record.get("commit")))}</code></td>'
            f"<td>{status_html(record)}</td>"
            f'<td>{human_bytes(size) if size else "—"}</td>'
            f"<td>{last_used_html(record, now)}</td>"
            f"<td>{progress_html(record)}</td>"
            f"<td>{requested}</td></tr>")


def _summary(records: Sequence[RecordView], matched: int, query: TableQuery, pages: int) -> str:
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    total = f"{len(records)} model" + ("" if len(records) == 1 else "s")
    parts = [total] + [f"{counts[s]} {s}" for s in _STATUS_ORDER if counts.get(s)]
    shown = f" · showing {matched} matching" if matched != len(records) else ""
    page = f" · page {min(query.page, pages)} of {pages}" if pages > 1 else ""
    return f'<p class="md-summary">{_e(" · ".join(parts))}{shown}{page}</p>'


def render_table(records: Sequence[RecordView], query: TableQuery, *, now: float | None = None) -> str:
    """The whole table (or the empty state that says how to start) as HTML."""
    if not records:
        return (f'<div class="md-empty">No models yet. Download a model with the form above, e.g. '
                f"<code>{EXAMPLE_MODEL}</code>.</div>")
    now = time.time() if now is None else now
    rows, matched, pages = select(records, query, now=now)
    if not rows:
        return (_summary(records, matched, query, pages) +
                '<div class="md-empty">No model matches this filter. Clear the name filter or pick '
                "<em>all</em> under Show to see every model.</div>")
    head = "".join(f"<th>{h}</th>" for h in ("Model", "Revision", "Commit", "Status", "Size on disk",
                                             "Last used", "Progress", "Requested"))
    body = "".join(row_html(r, now) for r in rows)
    return (_summary(records, matched, query, pages) +
            f'<table class="md-models"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
