"""The page's pure parts: table, progress, logs, disk panel, formatting, and the skip-when-unchanged tick."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.ui.disk import read_usage, render_disk
from app.ui.format import human_bytes, human_duration, split_patterns
from app.ui.live import LiveView
from app.ui.logs import log_tag, render_logs
from app.ui.models_table import PAGE_SIZE, TableQuery, progress_html, render_table, select


def record(name: str, status: str = "ready", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": name, "repo_id": name.split("@")[0], "revision": None, "commit": None,
                            "status": status, "bytes_done": 0, "bytes_total": 0, "files_done": 0,
                            "files_total": 0, "speed_bps": 0.0, "eta_s": None, "size_bytes": 0, "error": None,
                            "requested_by": "alice", "requested_at": time.time(), "attempt": 1,
                            "cancel_requested": False}
    return {**base, **kw}


def test_empty_table_says_how_to_start() -> None:
    html = render_table([], TableQuery())
    assert "Download a model with the form above, e.g. " in html
    assert "Qwen/Qwen2.5-0.5B-Instruct" in html


def test_download_row_has_a_real_progress_bar() -> None:
    rec = record("org/a", "downloading", bytes_done=500_000_000, bytes_total=2_000_000_000,
                 speed_bps=10_000_000, eta_s=154, files_done=2, files_total=5, commit="abcdef1234" * 4)
    html = progress_html(rec)
    assert 'role="progressbar"' in html and 'aria-valuenow="25"' in html and "width:25.0%" in html
    assert "25% · 500.0 MB / 2.0 GB · 10.0 MB/s · ETA 2m 34s · 2/5 files" in html
    row = render_table([rec], TableQuery())
    assert "abcdef1" in row and "abcdef12" not in row  # short commit


def test_failed_row_shows_its_reason_escaped() -> None:
    html = render_table([record("org/x", "failed", error="Repo <org/x> not found; check the name")],
                        TableQuery())
    assert "md-status-failed" in html
    assert "Repo &lt;org/x&gt; not found; check the name" in html


def test_filter_sort_and_pages() -> None:
    records = [record(f"org/m{i:03d}", "ready" if i % 2 else "failed", size_bytes=i) for i in range(120)]
    rows, matched, pages = select(records, TableQuery(status="failed"))
    assert matched == 60 and pages == 2 and len(rows) == PAGE_SIZE
    rows, matched, _ = select(records, TableQuery(text="M11", sort="size"))
    assert [r["name"] for r in rows] == [f"org/m{i}" for i in range(119, 109, -1)] and matched == 10
    assert select(records, TableQuery(page=99))[0][-1]["name"] == "org/m119"  # clamped to the last page
    assert "No model matches this filter" in render_table(records, TableQuery(text="nothing"))
    assert TableQuery.of(None, "bogus", "bogus", None) == TableQuery()


def test_logs_newest_first_filtered_and_escaped() -> None:
    lines = ["t1  alice: queued download of org/a", "t2  worker: failed <org/a>", "t3  bob: removing org/b"]
    html = render_logs(lines)
    assert html.index("t3") < html.index("t2") < html.index("t1")
    assert "&lt;org/a&gt;" in html
    filtered = render_logs(lines, "ORG/A")
    assert "t1" in filtered and "t2" in filtered and "t3" not in filtered
    assert "No log line matches" in render_logs(lines, "zzz")
    assert log_tag(lines) != log_tag([*lines, "t4"])


def test_disk_panel_with_and_without_the_volume() -> None:
    records = [record("org/a", size_bytes=3_000_000_000)]
    assert "not mounted on this UI worker" in render_disk(None, records)
    assert "3.0 GB" in render_disk(None, records)
    html = render_disk({"total": 100 * 10**9, "used": 25 * 10**9, "free": 75 * 10**9,
                        "models_bytes": 3 * 10**9}, records)
    assert "75.0 GB free of 100.0 GB (25% used)" in html

    class Broken:
        def disk_usage(self) -> dict[str, int]:
            raise OSError("gone")

    assert read_usage(Broken()) is None and read_usage(object()) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("*.safetensors, *.json", ["*.safetensors", "*.json"]),
    ("*.safetensors\n*.json\n\n", ["*.safetensors", "*.json"]),
    ("  ", None), (None, None), (["a", " "], ["a"]),
])
def test_split_patterns(text: Any, expected: list[str] | None) -> None:
    assert split_patterns(text) == expected


def test_human_units() -> None:
    assert human_bytes(1234567) == "1.2 MB" and human_bytes(0) == "0 B" and human_bytes(999) == "999 B"
    assert human_duration(3725) == "1h 02m" and human_duration(None) == "—"


class FakeController:
    """Just the replica-reading part of Controller that LiveView uses."""

    def __init__(self) -> None:
        self.version = 1
        self.in_sync = True
        self.models = [record("org/a")]
        self.lines = ["t1  alice: queued download of org/a"]
        self.reads = 0

    def fetch_models(self) -> list[dict[str, Any]]:
        self.reads += 1
        return list(self.models)

    def get_logs(self) -> list[str]:
        return list(self.lines)


def _tick(live: LiveView, *args: str) -> tuple[str, str]:
    """Run the tick coroutine by hand: it must finish without awaiting anything (no I/O on the loop)."""
    coroutine = live.tick(*args)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the tick awaited something")


def test_triggers_change_only_when_the_page_is_behind() -> None:
    fake = FakeController()
    live = LiveView(fake)  # type: ignore[arg-type]
    banner, table, _, shown_view = live.view(TableQuery())
    logs_html, shown_logs = live.logs(None)
    assert banner == "" and "org/a" in table and "queued download" in logs_html
    view_trigger, logs_trigger = _tick(live, shown_view, "", shown_logs, "")
    assert (view_trigger, logs_trigger) == ("", "")  # up to date: nothing changes, no render follows
    fake.version, fake.models = 2, [*fake.models, record("org/b", "downloading")]
    view_trigger, logs_trigger = _tick(live, shown_view, view_trigger, shown_logs, logs_trigger)
    assert view_trigger == f"2.1/{shown_view}" and logs_trigger == ""  # the log did not change
    assert _tick(live, shown_view, view_trigger, shown_logs, logs_trigger)[0] == view_trigger  # no new event
    for _ in range(50):  # 50 pages at the new version share one frame and one rendering
        assert "org/b" in live.view(TableQuery())[1]
    assert fake.reads == 2
    fake.version, fake.lines = 3, [*fake.lines, "t2  bob: removing org/a"]
    assert _tick(live, "2.1", view_trigger, shown_logs, logs_trigger)[1] == logs_trigger  # no frame built yet
    live.view(TableQuery())  # what the view's rendering does after the view trigger fired
    assert _tick(live, "3.1", view_trigger, shown_logs, logs_trigger)[1] != logs_trigger


def test_a_page_rendered_by_a_lagging_worker_is_fetched_again() -> None:
    fake = FakeController()
    live = LiveView(fake)  # type: ignore[arg-type]
    first = _tick(live, "", "", "", "")[0]
    shown_by_lagging_worker = "0.1"
    again = _tick(live, shown_by_lagging_worker, first, "", "")[0]
    assert again != first  # the trigger changes again, so the page asks for the view once more


def test_the_stale_banner_follows_in_sync_without_a_version_change() -> None:
    fake = FakeController()
    live = LiveView(fake)  # type: ignore[arg-type]
    shown = live.view(TableQuery())[3]
    fake.in_sync = False
    assert _tick(live, shown, "", "", "")[0] != ""
    banner, _, _, shown = live.view(TableQuery())
    assert "stale: Redis unreachable, showing last known state" in banner and shown == "1.0"
