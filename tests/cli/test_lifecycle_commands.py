"""The lifecycle commands against a real Redis and a real models dir: outdated, update, pin/unpin, ls --sort,
prune, and what `status` says about the room.

No worker runs here: where a command waits for a worker (``outdated --check``, ``update --wait``), the test writes
the worker's result through the same record transitions the worker uses. The worker side itself (the check job,
the update download, eviction's removals) is tested with the workers.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rich.console import Console

from app.cli.output import status_view
from app.core.controller import Controller
from app.core.quota import Limits
from app.core.records import ModelRecord, Status
from app.core.settings import Settings
from app.core.status import HealthReport, RoomInfo
from app.core.store import LogEntry
from tests.cli.conftest import Cli, one_error_line
from tests.support.waiting import wait_until

OLD = "a" * 40
NEW = "b" * 40
DAY = 86400.0


def ready(name: str, *, size: int = 1000, commit: str = OLD, **fields: object) -> ModelRecord:
    """A ready model downloaded 30 days ago (``fields`` override any key)."""
    repo_id, _, revision = name.partition("@")
    downloaded = time.time() - 30 * DAY
    values: dict[str, object] = {
        "name": name,
        "repo_id": repo_id,
        "revision": revision or None,
        "status": Status.READY,
        "commit": commit,
        "size_bytes": size,
        "bytes_done": size,
        "bytes_total": size,
        "files_done": 1,
        "files_total": 1,
        "requested_at": downloaded,
        "finished_at": downloaded,
    }
    return ModelRecord.model_validate(values | fields)


def put(settings: Settings, *records: ModelRecord) -> None:
    with Controller(settings, listen=False) as controller:
        for record in records:
            controller.store.force(record.name, record, LogEntry("test", f"{record.name} is {record.status.value}"))


def record_of(settings: Settings, name: str) -> ModelRecord:
    with Controller(settings, listen=False) as controller:
        record = controller.store.get(name)
    assert record is not None, name
    return record


def write_on_disk(models_dir: Path, record: ModelRecord) -> None:
    """The model's files in the HF cache layout: one blob of ``size_bytes`` and its snapshot link."""
    folder = models_dir / f"models--{record.repo_id.replace('/', '--')}"
    etag = record.name.replace("/", "-").replace("@", "-") + "-etag"
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "blobs" / etag).write_bytes(b"x" * record.size_bytes)
    snapshot = folder / "snapshots" / str(record.commit)
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "model.bin").symlink_to(Path("..", "..", "blobs", etag))


def column_order(output: str, names: list[str]) -> list[str]:
    """``names`` in the order their rows appear in a table."""
    rows = [line.split()[0] for line in output.splitlines() if line.split()]
    return [row for row in rows if row in names]


def run_with_env(cli: Cli, *cases: tuple[list[str], dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run commands, each with extra environment variables, at the same time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda case: cli(*case[0], env=case[1]), cases))


def later(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


Start = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def start(cli: Cli) -> Iterator[Start]:
    """Start a command that waits (for a worker) as a real process; the test plays the worker. Killed at the end
    of the test if it is still running."""
    started: list[subprocess.Popen[str]] = []

    def spawn(*args: str) -> subprocess.Popen[str]:
        process = cli.spawn(*args)
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.kill()  # a no-op once it exited
        process.communicate()


def transition(settings: Settings, name: str, step: Callable[[ModelRecord], ModelRecord]) -> None:
    with Controller(settings, listen=False) as controller:
        change = controller.store.update(name, lambda current: (step(current), None))
    assert change is not None, name


# ---- pin, unpin -----------------------------------------------------------------------------------------


def test_pin_and_unpin(cli: Cli, settings_env: Settings) -> None:
    put(settings_env, ready("org/a"), ready("org/gone").model_copy(update={"status": Status.REMOVING}))
    pinned = cli("pin", "org/a")
    assert pinned.returncode == 0 and pinned.stdout == "Pinned org/a; eviction never removes it.\n"
    assert record_of(settings_env, "org/a").pinned
    again, unknown, removing = cli.many(["pin", "org/a"], ["pin", "org/nope"], ["unpin", "org/gone"])
    assert again.returncode == 0 and again.stdout == "org/a is already pinned.\n"
    assert one_error_line(unknown) == "error: org/nope is not in the list; check the name with `modeldepot ls`."
    assert unknown.returncode == 1
    assert "org/gone is being removed; it cannot be pinned or unpinned." in one_error_line(removing)
    unpinned = cli("unpin", "org/a")
    assert unpinned.returncode == 0 and unpinned.stdout == "Unpinned org/a; eviction may remove it once it is idle.\n"
    assert not record_of(settings_env, "org/a").pinned
    with Controller(settings_env, listen=False) as controller:
        logs = controller.get_logs()
    assert logs[-2].endswith(f"  {cli.actor}: pinned org/a") and logs[-1].endswith(f"  {cli.actor}: unpinned org/a")


# ---- ls -------------------------------------------------------------------------------------------------


@pytest.fixture
def used(settings_env: Settings) -> Settings:
    now = time.time()
    put(
        settings_env,
        ready("org/old", size=3000, last_used_at=now - 40 * DAY),
        ready("org/new", size=1000, last_used_at=now - 120),
        ready("org/mid", size=2000, pinned=True, finished_at=now - 3 * DAY),  # never read since its download
        ready("org/upd", size=1500, last_used_at=now - DAY, latest_commit=NEW, update_available=True),
    )
    return settings_env


def test_ls_sorts_and_shows_last_use_pins_and_updates(cli: Cli, used: Settings) -> None:
    names = ["org/old", "org/new", "org/mid", "org/upd"]
    by_name, by_use, by_size, as_json, bad = cli.many(
        ["ls"], ["ls", "--sort", "last-used"], ["ls", "--sort", "size"], ["ls", "--json"], ["ls", "--sort", "age"]
    )
    assert by_name.returncode == by_use.returncode == by_size.returncode == 0
    assert column_order(by_name.stdout, names) == ["org/mid", "org/new", "org/old", "org/upd"]
    assert column_order(by_use.stdout, names) == ["org/old", "org/mid", "org/upd", "org/new"]  # eviction's order
    assert column_order(by_size.stdout, names) == ["org/old", "org/mid", "org/upd", "org/new"]
    assert "LAST USED" in by_name.stdout
    rows = {line.split()[0]: line for line in by_name.stdout.splitlines()[1:]}
    assert rows["org/old"].rstrip().endswith("40 days ago")
    assert rows["org/new"].rstrip().endswith("2 min ago")
    assert rows["org/mid"].rstrip().endswith("3 days ago") and "org/mid (pinned)" in rows["org/mid"]
    assert "ready, update: aaaaaaa → bbbbbbb" in rows["org/upd"]
    records = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert records["org/mid"]["pinned"] is True and records["org/old"]["last_used_at"] is not None
    assert records["org/upd"]["update_available"] is True and records["org/upd"]["latest_commit"] == NEW
    assert bad.returncode == 2 and "'age' is not one of" in bad.stderr


def test_ls_shows_an_update_under_way_and_one_that_failed(cli: Cli, settings_env: Settings) -> None:
    put(settings_env, ready("org/x"), ready("org/y", update_error="the Hub answered HTTP 503"),
        ready("org/z", latest_commit=NEW, update_available=True),
        ModelRecord(name="org/q", repo_id="org/q", status=Status.QUEUED, job_id="md-dl-q"))
    for name in ("org/x", "org/z"):
        transition(settings_env, name, lambda r: r.update_requested("md-dl-t", requested_by="test"))
    listed = cli("ls")
    assert re.search(r"org/x .* queued, updating aaaaaaa → the newest commit of main ", listed.stdout), listed.stdout
    assert re.search(r"org/z .* queued, updating aaaaaaa → bbbbbbb ", listed.stdout), listed.stdout
    assert re.search(r"org/q .* queued\s+never\s*\n", listed.stdout), listed.stdout
    assert re.search(r"org/y .* ready, update failed: the Hub answered HTTP 5…", listed.stdout), listed.stdout


# ---- outdated -------------------------------------------------------------------------------------------


@pytest.fixture
def followed(settings_env: Settings) -> Settings:
    now = time.time()
    hub_down = "update check failed: the Hub answered HTTP 503; the next check tries again"
    put(
        settings_env,
        ready("org/behind", checked_at=now - 3600, latest_commit=NEW, ref_kind="branch", update_available=True),
        ready("org/current@dev", checked_at=now - 300, latest_commit=OLD, ref_kind="branch"),
        ready("org/broken", checked_at=now - 600, check_error=hub_down),
        ready("org/fresh"),
        ready(f"org/fixed@{OLD}"),
        ready("org/tagged@v1", ref_kind="tag", checked_at=now - 60),
        ModelRecord(name="org/queued", repo_id="org/queued", status=Status.QUEUED, job_id="md-dl-q"),
    )
    return settings_env


FOLLOWED = ["org/behind", "org/broken", "org/current@dev", "org/fresh"]


def test_outdated_lists_the_models_that_follow_a_branch(cli: Cli, followed: Settings) -> None:
    table, as_json = cli.many(["outdated"], ["outdated", "--json"])
    assert table.returncode == 0 and as_json.returncode == 0  # updates exist, and that is not an error
    assert [r["name"] for r in json.loads(as_json.stdout)] == FOLLOWED
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:] if line.strip()}
    assert re.search(r"org/behind\s+main\s+aaaaaaa\s+bbbbbbb\s+60 min ago\s+update available", rows["org/behind"])
    assert re.search(r"org/current@dev\s+dev\s+aaaaaaa\s+aaaaaaa\s+5 min ago\s+up to date", rows["org/current@dev"])
    assert re.search(r"10 min ago\s+update check failed: the Hub answered HTTP 503", rows["org/broken"])
    assert re.search(r"org/fresh\s+main\s+aaaaaaa\s+never\s+not checked yet", rows["org/fresh"])
    assert not {"org/fixed@" + OLD, "org/tagged@v1", "org/queued"} & rows.keys()
    assert table.stdout.rstrip().endswith(
        "1 of 4 models have an update; 1 could not be checked; 1 not checked yet (`modeldepot outdated --check`). "
        "Take one with `modeldepot update org/behind`."
    )


def test_outdated_check_waits_for_every_answer(followed: Settings, start: Start) -> None:
    waiting = start("outdated", "--check", "--timeout", "30")
    with Controller(followed, listen=False) as controller:
        wait_until(lambda: controller.jobs.maintenance.count == 1, 20, "the check job")
    for name in FOLLOWED:
        latest = NEW if name in ("org/fresh", "org/behind") else OLD
        transition(followed, name, lambda r, latest=latest: r.checked(
            latest_commit=latest, ref_kind="branch", error=None, at=time.time()))
    code, out, err = later(waiting)
    assert code == 0, err
    assert out.startswith("Checking every model that follows a branch for updates; the list shows the result.\n")
    assert "warning: no live worker on the maintenance queue" in err
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert re.search(r"org/fresh\s+main\s+aaaaaaa\s+bbbbbbb\s+\d+ s ago\s+update available", rows["org/fresh"])
    assert re.search(r"org/broken .* up to date", rows["org/broken"])  # the new answer replaced the error
    assert "2 of 4 models have an update." in out


def test_ctrl_c_ends_the_wait_and_lists_what_arrived(followed: Settings, start: Start) -> None:
    waiting = start("outdated", "--check", "--timeout", "60")
    with Controller(followed, listen=False) as controller:
        wait_until(lambda: controller.jobs.maintenance.count == 1, 20, "the check job")
    asked = time.monotonic()
    waiting.send_signal(signal.SIGINT)
    code, out, err = later(waiting, timeout=10)
    assert time.monotonic() - asked < 2
    assert code == 0, err
    assert "stopped waiting; the check goes on in the background." in err
    assert "org/behind" in out and "1 of 4 models have an update" in out


def test_outdated_check_says_when_nobody_answers(cli: Cli, followed: Settings) -> None:
    result = cli("outdated", "--check", "--timeout", "0.5", "--json")
    assert result.returncode == 1
    assert [r["name"] for r in json.loads(result.stdout)] == FOLLOWED  # stdout stays JSON
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Checking every model that follows a branch for updates; the list shows the result."
    assert lines[-1] == (
        "error: the update check did not answer for 4 models within 0.5s (org/behind, org/broken, org/current@dev…); "
        "it goes on in the background. Is a maintenance worker running (`modeldepot status`)? Wait longer with "
        "--timeout."
    )


def test_outdated_with_nothing_to_check(cli: Cli, settings_env: Settings) -> None:
    put(settings_env, ready(f"org/fixed@{OLD}"))
    listed, checked = cli.many(["outdated"], ["outdated", "--check"])
    assert listed.returncode == 0 and listed.stdout == "No ready model follows a branch: there is nothing to update.\n"
    assert checked.returncode == 0
    assert checked.stdout.startswith("No model follows a branch; there is nothing to check.\n")


# ---- update ---------------------------------------------------------------------------------------------


def test_update_refuses_what_cannot_move(cli: Cli, settings_env: Settings) -> None:
    put(
        settings_env,
        ready(f"org/fixed@{OLD}"),
        ready("org/tagged@v1", ref_kind="tag"),
        ModelRecord(name="org/queued", repo_id="org/queued", status=Status.QUEUED, job_id="md-dl-q"),
    )
    fixed, tagged, queued, unknown = cli.many(
        ["update", f"org/fixed@{OLD}"], ["update", "org/tagged@v1"], ["update", "org/queued"], ["update", "org/nope"]
    )
    assert f"follows the commit {OLD}, which never moves: there is nothing to update" in one_error_line(fixed)
    assert "org/tagged@v1 follows the tag v1, which never moves" in one_error_line(tagged)
    assert "org/queued is queued; only a ready model can be updated." in one_error_line(queued)
    assert one_error_line(unknown) == "error: org/nope is not in the list; check the name with `modeldepot ls`."
    assert {r.returncode for r in (fixed, tagged, queued, unknown)} == {1}
    assert record_of(settings_env, "org/queued").status is Status.QUEUED


def test_update_queues_the_new_commit(cli: Cli, settings_env: Settings) -> None:
    put(settings_env, ready("org/a", latest_commit=NEW, update_available=True))
    result = cli("update", "org/a")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Updating org/a from aaaaaaa to bbbbbbb; it stays usable at aaaaaaa until the new commit is verified.\n"
    )
    record = record_of(settings_env, "org/a")
    assert record.status is Status.QUEUED and record.update_from is not None and record.update_from.commit == OLD
    with Controller(settings_env, listen=False) as controller:
        assert controller.jobs.is_waiting(str(record.job_id))


def test_update_wait_reports_the_new_commit_or_the_fallback(settings_env: Settings, start: Start) -> None:
    put(settings_env, ready("org/ok", latest_commit=NEW, update_available=True), ready("org/flaky"))
    ok, flaky = start("update", "org/ok", "--wait"), start("update", "org/flaky", "--wait")
    for name in ("org/ok", "org/flaky"):
        wait_until(lambda name=name: record_of(settings_env, name).update_from is not None, 20, f"{name} queued")
        transition(settings_env, name, ModelRecord.claim)
    transition(settings_env, "org/ok", lambda r: r.planned(commit=NEW, bytes_total=1500, files_total=1,
                                                            bytes_needed=500))
    transition(settings_env, "org/ok", lambda r: r.ready(commit=NEW, size_bytes=1500, bytes_total=1500,
                                                          files_total=1))
    transition(settings_env, "org/flaky", lambda r: r.stopped(Status.FAILED, "the Hub answered HTTP 503"))
    code, out, _ = later(ok)
    assert code == 0 and out.endswith("org/ok updated from aaaaaaa to bbbbbbb: 1.5 kB.\n"), out
    code, out, err = later(flaky)
    assert code == 1, out
    assert err.strip().splitlines()[-1] == (
        "error: update of org/flaky failed: the Hub answered HTTP 503. It stays ready at aaaaaaa; run "
        "`modeldepot update org/flaky` again once the cause is fixed."
    )
    record = record_of(settings_env, "org/flaky")
    assert record.status is Status.READY and record.commit == OLD and record.update_error


# ---- prune ----------------------------------------------------------------------------------------------


@pytest.fixture
def crowded(settings_env: Settings) -> Settings:
    """6 kB of models on disk: two idle ones, an idle pinned one and one used a minute ago."""
    now = time.time()
    records = [
        ready("org/a", size=2000, last_used_at=now - 10 * DAY),
        ready("org/b", size=2000, last_used_at=now - 5 * DAY),
        ready("org/c", size=1000, last_used_at=now - 20 * DAY, pinned=True),
        ready("org/d", size=1000, last_used_at=now - 60),
    ]
    put(settings_env, *records)
    for record in records:
        write_on_disk(settings_env.resolved_models_dir, record)
    return settings_env


QUOTA = {"MODELDEPOT_MODELS_QUOTA": "3000"}


@pytest.mark.direct_only  # the limits are this process's settings
def test_prune_dry_run_lists_the_least_recently_used(cli: Cli, crowded: Settings) -> None:
    result = cli("prune", "--dry-run", env=QUOTA)
    assert result.returncode == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == "Usage is 3.0 kB over the models quota (3.0 kB)."
    assert lines[1] == "Would remove 2 least recently used models:"
    assert [line.split() for line in lines[2:6]] == [
        ["NAME", "SIZE", "LAST", "USED"],
        ["org/a", "2.0", "kB", "10", "days", "ago"],
        ["org/b", "2.0", "kB", "5", "days", "ago"],
        ["total", "4.0", "kB"],
    ]
    assert lines[-1] == "Nothing was removed (dry run); run `modeldepot prune` to remove them."
    for name in ("org/a", "org/b", "org/c", "org/d"):
        assert record_of(crowded, name).status is Status.READY


@pytest.mark.direct_only  # the limits are this process's settings
def test_prune_from_a_script_removes_without_asking(cli: Cli, crowded: Settings) -> None:
    accepted = cli("prune", env=QUOTA)  # stdin is no terminal: as the issue asks, `modeldepot prune` does it
    assert accepted.returncode == 0, accepted.stderr
    assert "Remove them?" not in accepted.stdout
    assert "Removing 2 least recently used models:" in accepted.stdout
    assert "Their removal jobs are queued; watch them with `modeldepot ls`." in accepted.stdout
    statuses = {name: record_of(crowded, name).status for name in ("org/a", "org/b", "org/c", "org/d")}
    assert statuses == {"org/a": Status.REMOVING, "org/b": Status.REMOVING, "org/c": Status.READY,
                        "org/d": Status.READY}
    assert record_of(crowded, "org/a").evicted_at is not None
    with Controller(crowded, listen=False) as controller:
        evictions = [line for line in controller.get_logs() if "modeldepot (quota): evicting" in line]
        assert len(controller.jobs.maintenance) == 2
    assert [line.split("evicting ", 1)[1].split(" ")[0] for line in evictions] == ["org/a", "org/b"]
    assert "(cli))" in evictions[0]  # asked by whoever ran it


@pytest.mark.direct_only  # the limits are this process's settings
def test_prune_yes_does_not_ask(cli: Cli, crowded: Settings) -> None:
    result = cli("prune", "--yes", env=QUOTA)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage is 3.0 kB over the models quota (3.0 kB).\nRemoving 2 least")
    assert "Remove them?" not in result.stdout


@pytest.mark.direct_only  # the limits are this process's settings
def test_prune_says_why_nothing_goes(cli: Cli, crowded: Settings, tmp_path: Path) -> None:
    unlimited, within, stuck, unmounted = run_with_env(
        cli,
        (["prune", "--dry-run"], {}),
        (["prune", "--dry-run"], {"MODELDEPOT_MODELS_QUOTA": "10GB"}),
        (["prune"], {"MODELDEPOT_MODELS_QUOTA": "100", "MODELDEPOT_EVICT_MIN_IDLE_S": str(3650 * DAY)}),
        (["prune", "--yes"], {"MODELDEPOT_MODELS_DIR": str(tmp_path / "nope")}),
    )
    assert unlimited.returncode == 0 and unlimited.stdout.startswith("Nothing to prune: no limit is set")
    assert within.returncode == 0
    assert within.stdout == (
        "Nothing to prune: the models are within their limits (10.0 GB left under the models quota (10.0 GB)).\n"
    )
    assert stuck.returncode == 0
    assert stuck.stdout.startswith("Usage is 5.9 kB over the models quota (100 B). No model can go: every "
                                   "ready model is pinned or was used within the last 3650 days.")
    assert f"The models volume ({tmp_path / 'nope'}) is not mounted here" in one_error_line(unmounted)


# ---- status ---------------------------------------------------------------------------------------------


@pytest.mark.direct_only  # the limits are this process's settings
def test_status_shows_the_room_and_the_lifecycle_settings(cli: Cli, crowded: Settings) -> None:
    limits = {**QUOTA, "MODELDEPOT_DISK_HIGH_WATERMARK": "0.001"}
    text, as_json, off = run_with_env(
        cli,
        (["status"], limits),
        (["status", "--json"], limits),
        (["status"], {"MODELDEPOT_UPDATE_CHECK_S": "0", "MODELDEPOT_USAGE_SCAN_S": "60"}),
    )
    assert re.search(r"Room  models 6\.0 kB \(200% of the quota\), volume \d+% used; quota 3\.0 kB, high watermark "
                     r"0\.001%, low 0\.001%; refuses downloads that do not fit", text.stdout), text.stdout
    assert re.search(r"Lifecycle  update check every 6h 00m, usage scan every 10m 00s; last use: ", text.stdout)
    assert "! the models take 6.0 kB, over the quota of 3.0 kB; see what would go with `modeldepot prune" in text.stdout
    assert "% used, over the high watermark of 0.001%" in text.stdout
    room = json.loads(as_json.stdout)["room"]
    assert room["limits"] == {"quota": 3000, "high_pct": 0.001, "low_pct": 0.001, "min_idle_s": 3600.0,
                              "evict": False}
    assert room["models_bytes"] == 6000 and room["update_check_s"] == 21600 and room["usage_scan_s"] == 600
    assert room["atime_mode"] in {"noatime", "relatime", "strictatime", "unknown"}
    assert "Room  models 6.0 kB, volume" in off.stdout and "no quota or watermark" in off.stdout
    assert "Lifecycle  update checks off, usage scan every 1m 00s;" in off.stdout


@pytest.mark.parametrize(
    ("atime", "said"),
    [
        ("noatime", "last use: volume mounted noatime, falls back to download time"),
        ("relatime", "last use: access times are updated at most about once a day (relatime)"),
        ("strictatime", "last use: access times are updated on every read (strictatime)"),
    ],
)
def test_status_says_what_the_mount_means_for_last_use(atime: str, said: str) -> None:
    report = HealthReport(redis_url="redis://x", redis_version="7.2")
    report.room = RoomInfo(Limits(quota=10_000), 21600, 600, models_bytes=2500, percent_used=40.0, atime_mode=atime)
    console = Console(record=True, width=200, highlight=False)
    console.print(status_view(report))
    text = console.export_text()
    assert f"Lifecycle  update check every 6h 00m, usage scan every 10m 00s; {said}\n" in text
    assert "Room  models 2.5 kB (25% of the quota), volume 40% used; quota 10.0 kB; refuses downloads" in text
