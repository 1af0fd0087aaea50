"""The page's pure parts: table, progress, logs, disk panel, formatting, the version route and the sync."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.core.controller import Room
from app.core.quota import Limits, plan_prune
from app.core.records import retry_text
from app.core.units import human_bytes, human_duration
from app.core.volume import Usage
from app.web.ui.disk import render_disk
from app.web.ui.format import split_patterns
from app.web.ui.live import LiveView
from app.web.ui.logs import log_tag, render_logs
from app.web.ui.models_table import PAGE_SIZE, TableQuery, progress_html, render_table, select
from app.web.ui.poll import head, version_router


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


def test_paused_row_shows_what_it_kept_and_filters() -> None:
    paused = record("org/p", "paused", bytes_done=500_000_000, bytes_total=2_000_000_000)
    html = render_table([paused, record("org/r")], TableQuery())
    assert 'data-status="paused"' in html and "md-status-paused" in html
    assert "paused at 25% · 500.0 MB / 2.0 GB" in html and "500.0 MB</td>" in html  # size on disk so far
    assert "2 models · 1 paused · 1 ready" in html
    assert [r["name"] for r in select([paused, record("org/r")], TableQuery(status="paused"))[0]] == ["org/p"]
    assert TableQuery.of(None, "paused", None, None).status == "paused"


def test_a_download_waiting_out_an_outage_says_when_it_tries_again() -> None:
    now = time.time()
    retry = {"attempt": 3, "in_s": 8, "cause": "HTTP 503", "since": now - 30}
    rec = record("org/a", "downloading", bytes_done=500_000_000, bytes_total=2_000_000_000, retry=retry,
                 updated_at=now, speed_bps=0.0)
    html = progress_html(rec)
    assert "25% · 500.0 MB / 2.0 GB · retrying in 8 s after HTTP 503</div>" in html
    assert "ETA" not in html and "B/s" not in html
    assert retry_text({**rec, "updated_at": now - 5}, now=now) == "retrying in 3 s after HTTP 503"
    assert retry_text({**rec, "updated_at": now - 60}, now=now) == "retrying in 0 s after HTTP 503"  # never below 0
    assert retry_text({**rec, "retry": None}) == "" and retry_text({**rec, "status": "paused"}) == ""
    assert "retrying in 8 s after HTTP 503" in render_table([rec], TableQuery())


def test_a_download_asked_to_stop_says_so() -> None:
    rec = record("org/a", "downloading", bytes_done=5, bytes_total=10, pause_requested=True)
    assert progress_html(rec).endswith(" · pausing…</div>")
    both = progress_html({**rec, "cancel_requested": True})  # a cancel wins over a pause
    assert both.endswith(" · cancelling…</div>") and "pausing" not in both


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
    usage = Usage(total=100 * 10**9, used=25 * 10**9, free=75 * 10**9, models_bytes=3 * 10**9, partial_bytes=0)
    room = Room(usage=usage, limits=Limits(), prune=plan_prune(usage, records, Limits()), next_victims=(),
                atime_mode="relatime")
    html = render_disk(room, records)
    assert "75.0 GB free of 100.0 GB (25% used)" in html


def test_an_unreadable_volume_shows_as_not_mounted(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeController()

    def broken() -> Room | None:
        raise OSError("gone")

    fake.room = broken  # type: ignore[method-assign]
    assert "not mounted on this UI worker" in LiveView(fake).view(TableQuery())[2]  # type: ignore[arg-type]
    assert "could not read the models volume" in caplog.text


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

    @property
    def structural_version(self) -> int:
        return self.version

    def fetch_models(self) -> list[dict[str, Any]]:
        self.reads += 1
        return list(self.models)

    def get_logs(self) -> list[str]:
        return list(self.lines)

    def room(self) -> Room | None:
        return None  # the models volume is not mounted here


def run_now(coroutine: Any) -> Any:
    """Run a coroutine by hand: it must finish without awaiting anything (no I/O on the event loop)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the coroutine awaited something")


def test_the_version_route_reads_memory_only() -> None:
    fake = FakeController()
    endpoint = version_router(fake).routes[0].endpoint  # type: ignore[arg-type, attr-defined]
    assert json.loads(run_now(endpoint()).body) == {"version": 1, "structural": 1, "in_sync": True}
    fake.version, fake.in_sync = 7, False
    assert json.loads(run_now(endpoint()).body) == {"version": 7, "structural": 7, "in_sync": False}
    assert fake.reads == 0 and head(7, False) == "7.0"


def test_the_log_trigger_changes_only_when_the_log_did() -> None:
    fake = FakeController()
    live = LiveView(fake)  # type: ignore[arg-type]
    banner, table, _, shown_view = live.view(TableQuery())
    logs_html, shown_logs = live.logs(None)
    assert banner == "" and "org/a" in table and "queued download" in logs_html and shown_view == "1.1"
    assert live.sync(TableQuery(), shown_logs, "")[3:] == ("1.1", "")  # the log is current: no log request
    fake.version, fake.models = 2, [*fake.models, record("org/b", "downloading")]
    for _ in range(50):  # 50 pages syncing to the new version share one frame and one rendering
        _, table, _, shown_view, logs_trigger = live.sync(TableQuery(), shown_logs, "")
        assert "org/b" in table and shown_view == "2.1" and logs_trigger == ""
    assert fake.reads == 2
    fake.version, fake.lines = 3, [*fake.lines, "t2  bob: removing org/a"]
    logs_trigger = live.sync(TableQuery(), shown_logs, "")[4]
    assert logs_trigger not in ("", shown_logs)  # changed: the page's change event fetches the log
    assert live.sync(TableQuery(), shown_logs, logs_trigger)[4] == logs_trigger  # asked again: no second event
    new_logs, new_shown = live.logs(None)
    assert "removing org/a" in new_logs and live.sync(TableQuery(), new_shown, logs_trigger)[4] == logs_trigger


def test_the_stale_banner_follows_in_sync_without_a_version_change() -> None:
    fake = FakeController()
    live = LiveView(fake)  # type: ignore[arg-type]
    shown = live.view(TableQuery())[3]
    fake.in_sync = False
    assert head(fake.version, fake.in_sync) != shown  # what the page's poll compares
    banner, _, _, shown = live.view(TableQuery())
    assert "stale: Redis unreachable, showing last known state" in banner and shown == "1.0"


def test_a_log_rendering_waits_for_the_version_the_page_shows() -> None:
    fake = FakeController()
    live = LiveView(fake)  # type: ignore[arg-type]

    async def lagging_then_caught_up() -> tuple[bool, bool, bool]:
        async def catch_up() -> None:
            await asyncio.sleep(0.03)
            fake.version = 3

        task = asyncio.create_task(catch_up())
        waited = await live.caught_up("3.1")
        await task
        fake.in_sync = False
        not_in_sync = await live.caught_up("9.1", timeout=5)  # returns at once: it would not catch up
        fake.in_sync = True
        timed_out = await live.caught_up("9.1", timeout=0.02)
        return waited, not_in_sync, timed_out

    started = time.monotonic()
    with ThreadPoolExecutor(1) as thread:  # a loop of its own: the browser tests leave one running here
        assert thread.submit(asyncio.run, lagging_then_caught_up()).result() == (True, False, False)
    assert time.monotonic() - started < 2
    assert run_now(live.caught_up("")) is True and run_now(live.caught_up("2.1")) is True  # no wait when current
