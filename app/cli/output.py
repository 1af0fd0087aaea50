"""What the command line prints: tables, the health report, download progress (rich)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn
from rich.table import Table

from app.core.records import RecordView, Status, disk_bytes, retry_text
from app.core.units import human_bytes, human_duration

if TYPE_CHECKING:
    from app.core.status import HealthReport

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


def models_table(records: list[RecordView]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    longest = max((len(record["name"]) for record in records), default=4)
    table.add_column("NAME", no_wrap=True, min_width=min(longest, 50))
    table.add_column("REVISION", no_wrap=True, min_width=8)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("SIZE", justify="right", no_wrap=True, min_width=8)
    table.add_column("WHEN", no_wrap=True, min_width=16)
    for record in records:
        status = str(record.get("status"))
        table.add_row(
            record["name"],
            _revision_cell(record),
            _status_cell(record),
            human_bytes(disk_bytes(record)) if disk_bytes(record) else "",
            human_time(record.get("finished_at") or record.get("requested_at")),
            style="dim" if status == Status.REMOVING else None,
        )
    return table


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
    return text


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
    if report.redis_version is not None:
        parts += [_queues_table(report), _workers_table(report), _models_line(report), _volume_line(report),
                  _transfers_line(report)]
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
