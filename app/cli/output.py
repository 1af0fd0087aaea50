"""What the command line prints: tables, the health report, download progress (rich)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

from app.core.records import RecordView, Status, disk_bytes, idle_since, retry_text
from app.core.units import human_age, human_bytes, human_duration

if TYPE_CHECKING:
    from app.cli.depot import PruneReport
    from app.core.controller import Pruned
    from app.core.quota import Limits, Victim
    from app.core.replication import ReplicationInfo
    from app.core.status import HealthReport, RoomInfo

ERROR_WIDTH = 24
STATUS_STYLE: dict[str, str] = {
    Status.READY: "green",
    Status.FAILED: "red",
    Status.CANCELLED: "yellow",
    Status.DOWNLOADING: "cyan",
    Status.QUEUED: "blue",
    Status.REMOVING: "magenta",
    Status.PAUSED: "dark_orange",
}


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def human_time(ts: float | None) -> str:
    return "" if not ts else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def ago(ts: float | None, now: float) -> str:
    """``"5 h ago"``; ``""`` when there is no time."""
    return f"{human_age(now - ts)} ago" if ts else ""


def sort_models(records: Sequence[RecordView], by: str) -> list[RecordView]:
    """``records`` by ``name`` (the list's own order), ``last-used`` (least recently used first: the order eviction
    and a prune take them in, as on the page) or ``size`` (largest first); ties by name."""
    if by == "last-used":
        return sorted(records, key=lambda r: (idle_since(r), r["name"]))
    if by == "size":
        return sorted(records, key=lambda r: (-disk_bytes(r), r["name"]))
    return sorted(records, key=lambda r: r["name"])


def models_table(records: list[RecordView], *, now: float | None = None) -> Table:
    now = time.time() if now is None else now
    table = Table(box=None, pad_edge=False, header_style="bold")
    longest = max((len(record["name"]) + (9 if record.get("pinned") else 0) for record in records), default=4)
    table.add_column("NAME", no_wrap=True, min_width=min(longest, 60))
    table.add_column("REVISION", no_wrap=True, min_width=8)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("SIZE", justify="right", no_wrap=True, min_width=8)
    table.add_column("WHEN", no_wrap=True, min_width=16)
    table.add_column("LAST USED", no_wrap=True)
    for record in records:
        status = str(record.get("status"))
        table.add_row(
            _name_cell(record),
            _revision_cell(record),
            _status_cell(record),
            human_bytes(disk_bytes(record)) if disk_bytes(record) else "",
            human_time(record.get("finished_at") or record.get("requested_at")),
            _last_used_cell(record, now),
            style="dim" if status == Status.REMOVING else None,
        )
    return table


def _last_used_cell(record: RecordView, now: float) -> str:
    """How long ago the model was used; the download time (dim) while no use was read; "never" if neither."""
    if record.get("last_used_at"):
        return ago(idle_since(record), now)
    if record.get("finished_at"):
        return f"[dim]{ago(idle_since(record), now)}[/]"
    return "[dim]never[/]"


def _name_cell(record: RecordView) -> str:
    return escape(record["name"]) + (" [bold](pinned)[/]" if record.get("pinned") else "")


def _revision_cell(record: RecordView) -> str:
    revision, commit = record.get("revision") or "main", record.get("commit") or ""
    return escape(revision if not commit or revision == commit else f"{revision} ({commit[:7]})")


def _status_cell(record: RecordView) -> str:
    status = str(record.get("status"))
    text = f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"
    if status in (Status.DOWNLOADING, Status.PAUSED) and record.get("bytes_total"):
        text += f" {100 * record.get('bytes_done', 0) / record['bytes_total']:.0f}%"
    if retry := retry_text(record):
        text += f", {escape(retry)}"
    if status == Status.FAILED and record.get("error"):
        text += f": {escape(shorten(str(record['error']), ERROR_WIDTH))}"
    return text + _update_badge(record)


def _update_badge(record: RecordView) -> str:
    """``", update: b5dbad1 → 9f3c2e0"``, ``", updating b5dbad1 → 9f3c2e0"`` (the page's badges), or why the last
    update failed."""
    previous = record.get("update_from")
    if previous:
        old = str(previous.get("commit") or "")
        new = next((c for c in (record.get("commit"), record.get("latest_commit")) if c and c != old), None)
        target = new[:7] if new else f"the newest commit of {record.get('revision') or 'main'}"
        return f", [cyan]updating {old[:7]} → {escape(target)}[/]"
    if record.get("update_error"):
        return f", [red]update failed: {escape(shorten(str(record['update_error']), ERROR_WIDTH))}[/]"
    if record.get("update_available") and record.get("latest_commit"):
        return f", [yellow]{escape(update_span(record))}[/]"
    return ""


def update_span(record: RecordView) -> str:
    """``"update: b5dbad1 → 9f3c2e0"``."""
    return f"update: {(record.get('commit') or '')[:7]} → {(record.get('latest_commit') or '')[:7]}"


def outdated_table(records: list[RecordView], *, now: float | None = None) -> Table:
    """Ready models that follow a branch: their commit, the branch's commit on the Hub, when it was checked."""
    now = time.time() if now is None else now
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "BRANCH", "COMMIT", "LATEST", "CHECKED"):
        table.add_column(column, no_wrap=True)
    table.add_column("STATE")
    for record in records:
        table.add_row(escape(record["name"]), escape(record.get("revision") or "main"),
                      (record.get("commit") or "")[:7], (record.get("latest_commit") or "")[:7],
                      ago(record.get("checked_at"), now) or "never", _check_state(record))
    return table


def _check_state(record: RecordView) -> str:
    if record.get("check_error"):
        return f"[red]{escape(str(record['check_error']))}[/]"
    if record.get("checked_at") is None:
        return "not checked yet"
    if record.get("update_available"):
        return "[yellow]update available[/]"
    return "[green]up to date[/]"


def outdated_summary(records: list[RecordView]) -> str:
    """The line under ``modeldepot outdated``'s table: how many have an update, and how to take it."""
    updates = [r["name"] for r in records if r.get("update_available")]
    failed = sum(1 for r in records if r.get("check_error"))
    unchecked = sum(1 for r in records if r.get("checked_at") is None)
    parts = [f"{len(updates)} of {len(records)} {'model has' if len(records) == 1 else 'models have'} an update"]
    if failed:
        parts.append(f"{failed} could not be checked")
    if unchecked:
        parts.append(f"{unchecked} not checked yet (`modeldepot outdated --check`)")
    line = "; ".join(parts) + "."
    if updates:
        line += f" Take one with `modeldepot update {updates[0]}`."
    return line


def prune_view(pruned: Pruned | PruneReport, limits: Limits, *, now: float | None = None) -> RenderableType:
    """What ``modeldepot prune`` removed (or, with --dry-run, would remove), or why nothing has to go."""
    from app.cli.depot import PruneReport

    now = time.time() if now is None else now
    if isinstance(pruned, PruneReport):
        return _reported_prune_view(pruned, now=now)
    plan = pruned.plan
    if not limits.configured:
        return ("Nothing to prune: no limit is set (MODELDEPOT_MODELS_QUOTA, MODELDEPOT_DISK_HIGH_WATERMARK), "
                "so nothing has to go.")
    if plan.short_by <= 0:
        left = human_bytes(plan.available)
        return f"Nothing to prune: the models are within their limits ({left} left under {plan.limit})."
    over = f"Usage is {human_bytes(plan.short_by)} over {plan.limit}."
    if not plan.victims:
        return (f"{over} No model can go: every ready model is pinned or was used within the last "
                f"{human_age(plan.min_idle_s)}. Remove or unpin models, or raise the limit.")
    removed = _removed(plan.victims, pruned.removing, pruned.dry_run)
    parts: list[RenderableType] = [over, *_victims_part(removed, pruned.dry_run, now=now)]
    parts += _prune_notes(pruned, removed)
    return Group(*parts)


def _reported_prune_view(report: PruneReport, *, now: float) -> RenderableType:
    """A prune over HTTP: the server's message (it has the plan, and names what was skipped), then the same table."""
    removed = _removed(report.victims, report.removing, report.dry_run)
    parts: list[RenderableType] = [escape(report.message), *_victims_part(removed, report.dry_run, now=now)]
    if removed and not report.dry_run:
        parts.append("Their removal jobs are queued; watch them with `modeldepot ls`.")
    return Group(*parts) if len(parts) > 1 else parts[0]


def pruned_victims(pruned: Pruned | PruneReport) -> tuple[Victim, ...]:
    """The models a prune takes (or, in a dry run, would take)."""
    from app.cli.depot import PruneReport

    return pruned.victims if isinstance(pruned, PruneReport) else pruned.plan.victims


def _removed(victims: Sequence[Victim], removing: Sequence[str], dry_run: bool) -> tuple[Victim, ...]:
    return tuple(victims) if dry_run else tuple(v for v in victims if v.name in removing)


def _victims_part(removed: Sequence[Victim], dry_run: bool, *, now: float) -> list[RenderableType]:
    if not removed:
        return []
    verb = "Would remove" if dry_run else "Removing"
    return [f"{verb} {len(removed)} least recently used {'model' if len(removed) == 1 else 'models'}:",
            victims_table(removed, now=now)]


def victims_table(victims: Sequence[Victim], *, now: float) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_footer=True)
    table.add_column("NAME", "total", no_wrap=True)
    table.add_column("SIZE", human_bytes(sum(v.size_bytes for v in victims)), justify="right", no_wrap=True)
    table.add_column("LAST USED", no_wrap=True)
    for victim in victims:
        table.add_row(escape(victim.name), human_bytes(victim.size_bytes), ago(victim.idle_since, now))
    return table


def _prune_notes(pruned: Pruned, removed: Sequence[Victim]) -> list[str]:
    plan, notes = pruned.plan, []
    skipped = [v.name for v in plan.victims if v not in removed]
    if skipped:
        notes.append(f"Skipped (used, pinned or removed meanwhile): {escape(', '.join(skipped))}.")
    if not plan.enough:
        notes.append(f"[yellow]That is not enough: every other ready model is pinned or was used within the last "
                     f"{human_age(plan.min_idle_s)}. Remove or unpin models, or raise the limit.[/]")
    if removed and not pruned.dry_run:
        notes.append("Their removal jobs are queued; watch them with `modeldepot ls`.")
    return notes


def progress_line(record: RecordView) -> str:
    """One plain line about a download, for logs and pipes."""
    name, status = record["name"], record.get("status")
    if status != Status.DOWNLOADING or not record.get("bytes_total"):
        return ", ".join(part for part in (f"{name}: {status}", retry_text(record)) if part)
    done, total = int(record.get("bytes_done", 0)), int(record["bytes_total"])
    pace = retry_text(record) or (
        f"at {human_bytes(record.get('speed_bps') or 0)}/s, ETA {human_duration(record.get('eta_s'))}"
    )
    return f"{name}: downloading {human_bytes(done)} / {human_bytes(total)} ({100 * done / total:.0f}%) {pace}"


class DownloadView:
    """Shows a download as it progresses: a live bar on a terminal, throttled plain lines otherwise."""

    def __init__(self, console: Console, *, line_interval: float = 1.0) -> None:
        self.console = console
        self.line_interval = line_interval
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_line = ""
        self._last_status: object = None
        self._last_at = 0.0

    def __enter__(self) -> DownloadView:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[speed]}"),
                TextColumn("ETA {task.fields[eta]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, record: RecordView | None) -> None:
        if record is None:
            return
        if self._progress is None:
            self._print_line(record)
        else:
            self._update_bar(self._progress, record)

    def _update_bar(self, progress: Progress, record: RecordView) -> None:
        retry = retry_text(record)
        description = escape(f"{record['name']} {record.get('status')}" + (f", {retry}" if retry else ""))
        done, total = int(record.get("bytes_done") or 0), int(record.get("bytes_total") or 0) or None
        speed = f"{human_bytes(record.get('speed_bps') or 0)}/s"
        eta = human_duration(record.get("eta_s"))
        if self._task is None:
            self._task = progress.add_task(description, completed=done, total=total, speed=speed, eta=eta)
        else:
            progress.update(self._task, description=description, completed=done, total=total, speed=speed, eta=eta)

    def _print_line(self, record: RecordView) -> None:
        line, status, now = progress_line(record), record.get("status"), time.monotonic()
        same_status = status == self._last_status
        if line == self._last_line or (same_status and now - self._last_at < self.line_interval):
            return
        self._last_line, self._last_status, self._last_at = line, status, now
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def status_view(report: HealthReport) -> RenderableType:
    parts: list[RenderableType] = [_redis_line(report)]
    if report.replication is not None:
        parts.append(_replication_line(report.replication))
    if report.redis_version is not None:
        parts += [_queues_table(report), _workers_table(report), _models_line(report), _volume_line(report),
                  *_room_lines(report.room), _transfers_line(report)]
    parts += [f"[red]✗ {escape(problem)}[/]" for problem in report.problems]
    parts += [f"[yellow]! {escape(warning)}[/]" for warning in report.warnings]
    parts.append("[green]healthy[/]" if report.healthy else "[red]unhealthy[/]")
    return Group(*parts)


def _redis_line(report: HealthReport) -> str:
    if report.redis_version is None:
        return f"[bold]Redis[/]  {report.redis_url}  [red]unreachable[/]"
    return (
        f"[bold]Redis[/]  {report.redis_url}  [green]up[/], version {report.redis_version}, "
        f"state version {report.state_version}"
    )


def _replication_line(replication: ReplicationInfo) -> str:
    """``Primary 10.0.0.5:6379 (sentinel service 'depot') · replicas 10.0.0.6:6379 online, lag 0 s, 0 B behind``"""
    replicas = "; ".join(
        f"{escape(r.address)} {escape(r.state)}, lag {r.lag_s if r.lag_s is not None else '?'} s, "
        f"{human_bytes(r.behind_bytes)} behind" for r in replication.replicas) or "none"
    role = "" if replication.role == "master" else f" [red]({escape(replication.role)})[/]"
    return (f"[bold]Primary[/]  {escape(replication.primary)}{role} (found through {escape(replication.via)})  "
            f"replicas: {replicas}")


def _queues_table(report: HealthReport) -> Table:
    table = _titled_table("Queues", "QUEUE", "RQ NAME", "QUEUED", "RUNNING", "FAILED", "WORKERS")
    for q in report.queues:
        workers = f"[red]{q.workers_alive}[/]" if q.workers_alive == 0 else str(q.workers_alive)
        table.add_row(q.kind, q.name, str(q.queued), str(q.running), str(q.failed), workers)
    return table


def _workers_table(report: HealthReport) -> Table:
    table = _titled_table("Workers", "WORKER", "HOST", "PID", "STATE", "CURRENT JOB", "HEARTBEAT")
    for w in report.workers:
        state = escape(w.state) if w.alive else "[red]gone[/]"
        age = "" if w.heartbeat_age_s is None else f"{w.heartbeat_age_s:.0f}s ago"
        host, job = escape(w.hostname or "?"), escape(w.current_job or "")
        table.add_row(escape(w.name), host, str(w.pid or "?"), state, job, age)
    if not report.workers:
        table.add_row("[red](none)[/]", "", "", "", "", "")
    return table


def _titled_table(title: str, *columns: str) -> Table:
    """A borderless table with its title above it, as ``modeldepot status`` prints them."""
    return Table(*columns, title=title, title_justify="left", box=None, header_style="bold")


def _models_line(report: HealthReport) -> str:
    counts = ", ".join(f"{status} {count}" for status, count in report.models_by_status.items() if count)
    return f"[bold]Models[/]  {counts or 'none'}"


def _volume_line(report: HealthReport) -> str:
    volume = report.volume
    if volume is None:
        return "[bold]Volume[/]  models volume not mounted on this host"
    partial = f", {human_bytes(volume.partial_bytes)} in partial files" if volume.partial_bytes else ""
    return (f"[bold]Volume[/]  {escape(volume.path)}: {human_bytes(volume.free_bytes)} free of "
            f"{human_bytes(volume.total_bytes)}{partial}")


def _transfers_line(report: HealthReport) -> str:
    limits = report.transfers
    if limits is None:
        return ""
    cap = f"{human_bytes(limits.max_bandwidth)}/s per worker" if limits.max_bandwidth else "no bandwidth cap"
    return (f"[bold]Transfers[/]  {cap}, {limits.max_files} files at a time per download, {limits.transfer} "
            f"transfer, stall after {limits.stall_s:g} s, give up after {limits.retry_window_s:g} s without a byte "
            "(this host's settings)")


def _room_lines(room: RoomInfo | None) -> list[str]:
    """The models against the quota and watermarks, and the lifecycle intervals (this host's settings)."""
    if room is None:
        return []
    from app.core.status import last_use_note

    usage = []
    if room.models_bytes is not None:
        quota = room.limits.quota
        share = f" ({100 * room.models_bytes / quota:.0f}% of the quota)" if quota else ""
        usage.append(f"models {human_bytes(room.models_bytes)}{share}")
    if room.percent_used is not None:
        usage.append(f"volume {room.percent_used:.0f}% used")
    limits = "; ".join(part for part in (", ".join(usage), escape(room.limits.describe())) if part)
    checks = f"update check every {human_duration(room.update_check_s)}" if room.update_check_s else "update checks off"
    lifecycle = f"{checks}, usage scan every {human_duration(room.usage_scan_s)}"
    if room.atime_mode is not None:
        lifecycle += f"; {last_use_note(room.atime_mode)}"
    return [f"[bold]Room[/]  {limits}", f"[bold]Lifecycle[/]  {escape(lifecycle)}"]
