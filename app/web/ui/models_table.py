"""The models table: filter, sort and page the records, and render them as HTML with progress bars."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.records import RecordView, Status, disk_bytes, retry_text
from app.core.units import human_bytes, human_duration
from app.web.ui.format import human_speed, percent, short_commit, timestamp

PAGE_SIZE = 50
ALL = "all"
ACTIVE = "active"
STATUS_FILTERS = (ALL, ACTIVE, Status.QUEUED, Status.DOWNLOADING, Status.PAUSED, Status.READY, Status.FAILED,
                  Status.CANCELLED, Status.REMOVING)
SORTS = ("name", "status", "size", "newest")
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


def _matches(record: RecordView, query: TableQuery) -> bool:
    if query.text and query.text.lower() not in str(record.get("name", "")).lower():
        return False
    status = record.get("status")
    if query.status == ACTIVE:
        return status in _ACTIVE
    return query.status == ALL or status == query.status


def _sort_key(sort: str) -> Callable[[RecordView], Any]:
    if sort == "status":
        return lambda r: (_STATUS_ORDER.get(r.get("status", ""), 99), r.get("name", ""))
    if sort == "size":
        return lambda r: (-disk_bytes(r), r.get("name", ""))
    if sort == "newest":
        return lambda r: (-(r.get("requested_at") or 0), r.get("name", ""))
    return lambda r: str(r.get("name", "")).lower()


def select(records: Sequence[RecordView], query: TableQuery) -> tuple[list[RecordView], int, int]:
    """The rows of the requested page, how many records matched, and the number of pages."""
    matched = sorted((r for r in records if _matches(r, query)), key=_sort_key(query.sort))
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
    status = str(record.get("status", "?"))
    cell = f'<span class="md-status md-status-{_e(status)}">{_e(status)}</span>'
    if record.get("error") and status in (Status.FAILED, Status.CANCELLED):
        cell += f'<div class="md-error">{_e(record["error"])}</div>'
    return cell


def row_html(record: RecordView) -> str:
    size = disk_bytes(record)
    requested = " · ".join(p for p in (_e(record.get("requested_by") or ""),
                                       _e(timestamp(record.get("requested_at")))) if p)
    return (f'<tr data-name="{_e(record.get("name", ""))}" data-status="{_e(record.get("status", ""))}">'
            f'<td>{_e(record.get("repo_id") or record.get("name", ""))}</td>'
            f'<td>{_e(record.get("revision") or "main")}</td>'
            f'<td><code class="md-commit">{_e(short_commit(record.get("commit")))}</code></td>'
            f"<td>{status_html(record)}</td>"
            f'<td>{human_bytes(size) if size else "—"}</td>'
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


def render_table(records: Sequence[RecordView], query: TableQuery) -> str:
    """The whole table (or the empty state that says how to start) as HTML."""
    if not records:
        return (f'<div class="md-empty">No models yet. Download a model with the form above, e.g. '
                f"<code>{EXAMPLE_MODEL}</code>.</div>")
    rows, matched, pages = select(records, query)
    if not rows:
        return (_summary(records, matched, query, pages) +
                '<div class="md-empty">No model matches this filter. Clear the name filter or pick the '
                "status <em>all</em> to see every model.</div>")
    head = "".join(f"<th>{h}</th>" for h in ("Model", "Revision", "Commit", "Status", "Size on disk",
                                             "Progress", "Requested"))
    body = "".join(row_html(r) for r in rows)
    return (_summary(records, matched, query, pages) +
            f'<table class="md-models"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
