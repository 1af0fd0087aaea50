"""The models on the volume in the page, the API and /metrics: update badges, pins, last use, the disk panel
against its limits, the lifecycle API names and their roles, idle-age metrics (on a real Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client.exceptions import AppError
from prometheus_client.parser import text_string_to_metric_families

from app.core.controller import Controller, Room
from app.core.quota import Limits, Victim, plan_prune
from app.core.records import ModelRecord, Previous, RecordView, Status
from app.core.settings import Settings
from app.core.store import LogEntry, Tally
from app.core.volume import Usage
from app.web.auth.sessions import COOKIE_NAME
from app.web.ui.disk import NOATIME_NOTE, render_disk
from app.web.ui.live import LiveView
from app.web.ui.models_table import LAST_USED, TableQuery, render_table, row_html, select
from tests.support.waiting import wait_until
from tests.ui.test_api import login

DAY = 86400.0
NOW = 1_800_000_000.0
OLD = "b5dbad1" + "0" * 33
NEW = "9f3c2e0" + "1" * 33
LIFECYCLE_NAMES = {"/check_updates", "/update_model", "/pin_model", "/unpin_model", "/prune"}


def ready(name: str, *, size: int = 1000, used_days_ago: float | None = None, done_days_ago: float = 100,
          **changes: Any) -> ModelRecord:
    """A ready record at ``OLD``; last used that many days before ``NOW`` (None: no use read yet)."""
    last_used = None if used_days_ago is None else NOW - used_days_ago * DAY
    base = ModelRecord(name=name, repo_id=name.split("@")[0], status=Status.READY, commit=OLD, size_bytes=size,
                       requested_by="alice", requested_at=NOW - done_days_ago * DAY - 60,
                       finished_at=NOW - done_days_ago * DAY, last_used_at=last_used, files_total=3)
    return base.model_copy(update=changes)


def view(record: ModelRecord) -> RecordView:
    return record.to_dict()  # type: ignore[return-value]


def status_cell(html: str) -> str:
    return html.split("</td>")[3]


# ---- the row -------------------------------------------------------------------------------------------


def test_update_badges_follow_the_record() -> None:
    outdated = view(ready("org/a", latest_commit=NEW, update_available=True))
    assert "update: b5dbad1 → 9f3c2e0" in row_html(outdated, NOW)
    assert "update:" not in row_html(view(ready("org/a", latest_commit=OLD)), NOW)  # checked, current

    previous = Previous(commit=OLD, size_bytes=1000, files=3, finished_at=NOW - DAY)
    queued = view(ready("org/a", latest_commit=NEW, update_available=True).model_copy(
        update={"status": Status.QUEUED, "update_from": previous}))
    cell = status_cell(row_html(queued, NOW))
    assert ">queued</span>" in cell and "updating b5dbad1 → 9f3c2e0" in cell and "update:" not in cell
    planned = view(ready("org/a", commit=NEW, status=Status.DOWNLOADING, update_from=previous))
    assert "updating b5dbad1 → 9f3c2e0" in row_html(planned, NOW)  # the plan's commit
    unknown = view(ready("org/a@dev", revision="dev", status=Status.QUEUED, update_from=previous))
    assert "updating b5dbad1 → the newest commit of dev" in row_html(unknown, NOW)


def test_failed_checks_and_updates_leave_the_status_alone() -> None:
    checked = row_html(view(ready("org/a", check_error="org/a is gated now <ask> for access")), NOW)
    assert 'data-status="ready"' in checked and ">ready</span>" in status_cell(checked)
    assert "update check failed: org/a is gated now &lt;ask&gt; for access" in checked
    updated = row_html(view(ready("org/a", update_error="HTTP 503 from the Hub")), NOW)
    assert ">ready</span>" in updated and "update failed, still at b5dbad1: HTTP 503 from the Hub" in updated
    evicted = row_html(view(ready("org/a", status=Status.REMOVING, evicted_at=NOW)), NOW)
    assert "evicted to make room" in evicted
    assert "evicted" not in row_html(view(ready("org/a", status=Status.REMOVING)), NOW)  # a user's removal


def test_pin_marker_and_last_used_column() -> None:
    pinned = row_html(view(ready("org/a", pinned=True, used_days_ago=40)), NOW)
    assert "md-badge-pin" in pinned and ">pinned</span>" in pinned and "<td>40 days ago</td>" in pinned
    assert "pinned" not in row_html(view(ready("org/a")), NOW)
    fallback = row_html(view(ready("org/a", done_days_ago=3)), NOW)  # no access read: the download time
    assert 'title="no access read yet: this is when it was downloaded">3 days ago' in fallback
    queued = view(ModelRecord.requested("org/q", "org/q", job_id="dl-1", requested_by="alice"))
    assert '<span class="md-muted">never</span>' in row_html(queued, NOW)
    table = render_table([view(ready("org/a", used_days_ago=0.5))], TableQuery(), now=NOW)
    assert "<th>Last used</th>" in table and "12 h ago" in table


# ---- sort and filter -----------------------------------------------------------------------------------


def test_sort_and_filter_by_last_use() -> None:
    records = [view(r) for r in (
        ready("org/fresh", used_days_ago=0.1),
        ready("org/month", used_days_ago=40),
        ready("org/never-read", done_days_ago=200),  # falls back to its download time
        ready("org/week", used_days_ago=8, pinned=True),
        ready("org/ancient", used_days_ago=120, latest_commit=NEW, update_available=True),
        ready("org/failed", used_days_ago=300, status=Status.FAILED, error="gone"),
    )]

    def names(**query: Any) -> list[str]:
        return [r["name"] for r in select(records, TableQuery(**query), now=NOW)[0]]

    assert names(sort=LAST_USED) == ["org/failed", "org/never-read", "org/ancient", "org/month", "org/week",
                                     "org/fresh"]  # least recently used first
    assert names(status="idle > 30 days", sort=LAST_USED) == ["org/never-read", "org/ancient", "org/month"]
    assert names(status="idle > 90 days") == ["org/ancient", "org/never-read"]  # ready ones only
    assert names(status="idle > 7 days", text="WEEK") == ["org/week"]
    assert names(status="pinned") == ["org/week"] and names(status="update available") == ["org/ancient"]
    query = TableQuery.of("", "idle > 30 days", LAST_USED, 1)
    assert (query.status, query.sort) == ("idle > 30 days", LAST_USED)
    assert "showing 3 matching" in render_table(records, query, now=NOW)


# ---- the disk panel ------------------------------------------------------------------------------------


def write_blob(models_dir: Path, repo: str, name: str, size: int) -> None:
    blobs = models_dir / f"models--{repo.replace('/', '--')}" / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / name).write_bytes(b"x" * size)


def test_the_disk_panel_with_a_quota(ui_settings: Settings) -> None:
    models_dir = ui_settings.resolved_models_dir
    write_blob(models_dir, "org/big", "a" * 40, 6000)
    write_blob(models_dir, "org/small", "b" * 40, 3000)
    write_blob(models_dir, "org/partial", "c" * 40 + ".incomplete", 500)
    now = time.time()
    with Controller(ui_settings.model_copy(update={"models_quota": 8000})) as controller:
        force(controller, ready("org/big", size=6000, last_used_at=now - 50 * DAY),
              ready("org/small", size=3000, last_used_at=now - 70 * DAY, pinned=True),
              ready("org/recent", size=0, last_used_at=now - 60))
        disk = LiveView(controller).view(TableQuery())[2]
    assert "Models take 9.5 kB of the 8.0 kB quota (119%)" in disk  # every blob on the volume, partials too
    assert '<div class="md-quota"><div class="md-bar md-over"' in disk and 'aria-valuenow="100"' in disk
    assert "500 B in partial files" in disk
    assert "Limits: quota 8.0 kB; refuses downloads that do not fit." in disk
    assert "Over the models quota (8.0 kB): a prune would now remove org/big (6.0 kB), freeing 6.0 kB." in disk
    assert "Removed first by a prune: org/big (6.0 kB, idle 50 days)." in disk  # not pinned, not recent
    assert "org/small" not in disk.split("Removed first")[1].split("</p>")[0]  # pinned
    share = disk.split("Largest models:")[1]
    assert share.index("org/big: 6.0 kB · 63%") < share.index("org/small: 3.0 kB · 32%")


def test_the_disk_panel_without_limits_and_on_noatime() -> None:
    usage = Usage(total=10**12, used=4 * 10**11, free=6 * 10**11, models_bytes=3 * 10**11, partial_bytes=0)
    records = [view(ready("org/a", size=3 * 10**11))]
    plain = Room(usage, Limits(), plan_prune(usage, records, Limits()), (Victim("org/a", 1, NOW),), "relatime")
    html = render_disk(plain, records, now=NOW)
    assert "No models quota or disk watermark is set" in html and "quota" not in html.split("No models")[0]
    assert "Evicted next" not in html and "prune" not in html and NOATIME_NOTE not in html
    evicting = Limits(high_pct=90.0, low_pct=80.0, evict=True, min_idle_s=3600)
    html = render_disk(Room(usage, evicting, plan_prune(usage, records, evicting), (), "noatime"), records, now=NOW)
    assert "Evicted next: nothing; every ready model is pinned or was used within the last 60 min." in html
    assert "last use falls back to download time" in html and 'class="md-mark" style="left:90.0%"' in html


# ---- the API -------------------------------------------------------------------------------------------


def force(controller: Controller, *records: ModelRecord) -> None:
    for record in records:
        controller.store.force(record.name, record, LogEntry("test", f"wrote {record.name}"))
    wait_until(lambda: all(r.name in controller.models for r in records), 10, "the replica to follow")


def test_lifecycle_api_names_and_roles(ui_settings: Settings, users_file: Path, serve_ui: Callable[..., Any],
                                       gradio_client: Callable[..., Any]) -> None:
    server, controller = serve_ui(ui_settings.model_copy(update={"auth_file": users_file}))
    now = time.time()
    force(controller, ready("org/outdated", latest_commit=NEW, update_available=True, finished_at=now - 40 * DAY),
          ready(f"org/fixed@{OLD}", revision=OLD, finished_at=now - 40 * DAY))
    admin = gradio_client(server.url, headers={"Cookie": f"{COOKIE_NAME}={login(server.url, 'alice')}"})
    viewer = gradio_client(server.url, headers={"Cookie": f"{COOKIE_NAME}={login(server.url, 'bob')}"})
    assert set(admin.view_api(print_info=False, return_format="dict")["named_endpoints"]) >= LIFECYCLE_NAMES

    for call, action in [(("org/outdated", "/pin_model"), "pin models"), (("org/outdated", "/unpin_model"),
                          "unpin models"), (("org/outdated", "/update_model"), "update models"),
                         (("org/outdated", "/check_updates"), "check for updates"),
                         (("", "/check_updates"), "check for updates"), ((True, "/prune"), "prune models")]:
        with pytest.raises(AppError, match=f"bob is a viewer and cannot {action}"):
            viewer.predict(call[0], api_name=call[1])
    assert viewer.predict("org/outdated", api_name="/get_model")["pinned"] is False  # nothing changed

    pinned = admin.predict("org/outdated", api_name="/pin_model")
    assert pinned["changed"] is True and pinned["message"].startswith("Pinned org/outdated")
    assert admin.predict("org/outdated", api_name="/pin_model")["changed"] is False
    assert viewer.predict("org/outdated", api_name="/get_model")["pinned"] is True
    assert admin.predict("org/outdated", api_name="/unpin_model")["changed"] is True
    with pytest.raises(AppError, match="org/missing is not in the list"):
        admin.predict("org/missing", api_name="/pin_model")

    dry = admin.predict(True, api_name="/prune")
    assert dry["dry_run"] is True and dry["removing"] == [] and dry["message"].startswith("Nothing to prune")
    checked = admin.predict("", api_name="/check_updates")
    assert checked["changed"] is True and checked["job_id"]
    assert "every model that follows a branch" in checked["message"]
    assert admin.predict("org/outdated", api_name="/check_updates")["changed"] is True
    with pytest.raises(AppError, match="a commit that never moves: there is nothing to check"):
        admin.predict(f"org/fixed@{OLD}", api_name="/check_updates")
    with pytest.raises(AppError, match="which never moves: there is nothing to update"):
        admin.predict(f"org/fixed@{OLD}", api_name="/update_model")

    updating = admin.predict("org/outdated", api_name="/update_model")
    assert updating["changed"] is True and "from b5dbad1 to 9f3c2e0" in updating["message"]
    record = viewer.predict("org/outdated", api_name="/get_model")
    assert record["status"] == "queued" and record["update_from"]["commit"] == OLD
    assert record["requested_by"] == "alice"
    with pytest.raises(AppError, match="only a ready model can be updated"):
        admin.predict("org/outdated", api_name="/update_model")
    logs = viewer.predict(api_name="/get_logs")
    assert any(line.endswith("alice: pinned org/outdated") for line in logs)
    assert any("alice: updating org/outdated from b5dbad1 to 9f3c2e0" in line for line in logs)


def test_prune_through_the_api(ui_settings: Settings, serve_ui: Callable[..., Any],
                               gradio_client: Callable[..., Any]) -> None:
    write_blob(ui_settings.resolved_models_dir, "org/old", "d" * 40, 5000)
    write_blob(ui_settings.resolved_models_dir, "org/kept", "e" * 40, 4000)
    server, controller = serve_ui(ui_settings.model_copy(update={"models_quota": 6000}))
    now = time.time()
    force(controller, ready("org/old", size=5000, last_used_at=now - 30 * DAY),
          ready("org/kept", size=4000, last_used_at=now - 60 * DAY, pinned=True))
    client = gradio_client(server.url)
    dry = client.predict(True, api_name="/prune")
    assert dry["message"] == "A prune would remove org/old (5.0 kB), freeing 5.0 kB."
    assert [v["name"] for v in dry["plan"]["victims"]] == ["org/old"]
    assert controller.models["org/old"]["status"] == "ready"  # a dry run removes nothing
    done = client.predict(False, api_name="/prune")
    assert done["removing"] == ["org/old"] and done["message"].startswith("Removing org/old")
    record = client.predict("org/old", api_name="/get_model")
    assert record["status"] == "removing" and record["evicted_at"]
    assert client.predict("org/kept", api_name="/get_model")["status"] == "ready"


# ---- /metrics ------------------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("age", "")): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_metrics_by_idle_age_without_model_names(ui_settings: Settings, serve_ui: Callable[..., Any]) -> None:
    server, controller = serve_ui(ui_settings)
    now = time.time()
    records = [ready("secret-org/today", size=1, last_used_at=now - 3600),
               ready("secret-org/days", size=10, last_used_at=now - 3 * DAY, pinned=True),
               ready("secret-org/weeks", size=100, last_used_at=now - 10 * DAY),
               ready("secret-org/months", size=1000, last_used_at=now - 45 * DAY),
               ready("secret-org/unread", size=10_000, last_used_at=None, finished_at=now - 200 * DAY),
               ready("secret-org/quarter", size=100_000, last_used_at=now - 91 * DAY, latest_commit=NEW,
                     update_available=True),
               ready("secret-org/failed", size=7, status=Status.FAILED, error="x", last_used_at=now - 400 * DAY),
               ready("secret-org/evicted", size=70, status=Status.REMOVING, evicted_at=now,
                     last_used_at=now - 99 * DAY)]
    force(controller, *records)
    change = controller.store.update("secret-org/evicted", lambda current: (None, None),
                                     tally=Tally({"evictions": 1, "evicted_bytes": 70}))  # as the removal job counts
    assert change is not None
    wait_until(lambda: "secret-org/evicted" not in controller.models, 10, "the replica to follow")
    text = httpx.get(server.url + "/metrics", timeout=10).text
    got = samples(text)
    expected = {"lt_1d": (1, 1), "1d_7d": (1, 10), "7d_30d": (1, 100), "30d_90d": (1, 1000), "ge_90d": (2, 110_000)}
    for age, (count, size) in expected.items():
        assert got[("modeldepot_models_idle", age)] == count, age
        assert got[("modeldepot_models_idle_bytes", age)] == size, age
    assert got[("modeldepot_models_pinned", "")] == 1
    assert got[("modeldepot_models_update_available", "")] == 1
    assert got[("modeldepot_evictions_total", "")] == 1
    assert got[("modeldepot_evicted_bytes_total", "")] == 70
    assert "secret-org" not in text and "org/" not in text
