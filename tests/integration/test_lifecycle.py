"""A model's life after it is ready, on real RQ workers and the test Hub: update checks, updates, revisions that
share blobs, last use from access times."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from huggingface_hub import HfApi, scan_cache_dir

from app.core import eviction, volume
from app.core.controller import Controller
from app.core.errors import ConflictError, NotFoundError
from app.core.quota import Victim
from app.core.records import ModelRecord, Unchanged
from app.core.settings import Settings, get_settings, reset_settings
from tests.hubserver import HubServer
from tests.support.waiting import wait_snapshot, wait_status, wait_until
from workers import removal
from workers.context import WorkerContext
from workers.download import cache
from workers.lifecycle import usage

pytestmark = pytest.mark.slow

THREE = {"config.json": b'{"v": 1}', "a.safetensors": 200_000, "b.safetensors": 300_000}


def _served(hub: HubServer) -> dict[tuple[str, str], int]:
    hub.wait_idle()
    return {key: count for key, count in hub.bytes_served.items() if count}


def _ref(models: Path, repo_id: str, branch: str = "main") -> str:
    return (cache.repo_dir(repo_id, models) / "refs" / branch).read_text().strip()


def _revisions(models: Path, repo_id: str) -> list[str]:
    return sorted(rev.commit_hash for repo in scan_cache_dir(models).repos if repo.repo_id == repo_id
                  for rev in repo.revisions)


def _verified(hub: HubServer, models: Path, repo_id: str, commit: str) -> bool:
    result = HfApi(endpoint=hub.url).verify_repo_checksums(repo_id, revision=commit, cache_dir=models)
    return not result.mismatches and not result.missing_paths


def _checked_after(controller: Controller, name: str, moment: float) -> dict[str, Any]:
    return wait_until(lambda: (r := controller.models.get(name)) and (r["checked_at"] or 0) > moment and r,
                      20, f"an update check of {name}")


def _ready(controller: Controller, hub: HubServer, start_worker: Any, repo_id: str,
           files: dict[str, bytes | int] | None = None, **kwargs: Any) -> str:
    commit = hub.add_repo(repo_id, dict(files or THREE), **kwargs)
    start_worker()
    controller.download_model(repo_id)
    wait_status(controller, repo_id, {"ready"})
    return commit


@pytest.fixture
def no_periodic_checks(worker_env: dict[str, str]) -> None:
    """Checks only when asked, so the Hub's call counts are the test's own."""
    worker_env["MODELDEPOT_UPDATE_CHECK_S"] = "0"


@pytest.mark.usefixtures("no_periodic_checks")
def test_update_fetches_only_the_changed_file_then_drops_the_old_revision(
        hub: HubServer, start_worker: Any, controller: Controller, settings_env: Settings) -> None:
    models = settings_env.resolved_models_dir
    old = _ready(controller, hub, start_worker, "org/three")
    new = hub.update_file("org/three", "b.safetensors", 310_000)
    hub.reset_requests()

    asked = time.time()
    controller.check_updates()
    record = _checked_after(controller, "org/three", asked)
    assert record["status"] == "ready" and record["update_available"] and record["latest_commit"] == new
    assert record["commit"] == old and record["ref_kind"] == "branch" and record["check_error"] is None
    assert (hub.api_calls("info", "org/three"), hub.api_calls("refs"), hub.api_calls("tree"),
            hub.api_calls("resolve")) == (1, 0, 0, 0)  # one light call, no file listing
    assert any(f"update available for org/three: {old[:7]} → {new[:7]}" in line for line in controller.get_logs())

    hub.reset_requests()
    outcome = controller.update_model("org/three", requested_by="alice")
    assert f"from {old[:7]} to {new[:7]}" in outcome.message
    record = wait_until(lambda: (r := controller.models["org/three"])["status"] == "ready" and r["commit"] == new
                        and r, 30, "the update")
    assert _served(hub) == {("org/three", "b.safetensors"): 310_000}  # the two unchanged files were not fetched
    assert not record["update_available"] and record["update_from"] is None and record["update_error"] is None
    assert _revisions(models, "org/three") == [new] and _ref(models, "org/three") == new
    assert not cache.snapshot_dir("org/three", old, models).exists()
    assert _verified(hub, models, "org/three", new)
    assert record["size_bytes"] == cache.size_on_disk("org/three", new, models)
    line = next(line for line in controller.get_logs() if "updated org/three" in line)
    assert f"from {old[:7]} to {new[:7]}" in line and "freed 300.0 kB" in line
    wait_snapshot(settings_env.resolved_state_file,
                  lambda doc: doc["models"]["org/three"]["commit"] == new
                  and doc["models"]["org/three"]["status"] == "ready")


@pytest.mark.usefixtures("no_periodic_checks")
def test_a_failed_update_stays_ready_at_the_old_commit_which_stays_usable_throughout(
        hub: HubServer, start_worker: Any, controller: Controller, settings_env: Settings) -> None:
    models = settings_env.resolved_models_dir
    old = _ready(controller, hub, start_worker, "org/flaky")
    hub.update_file("org/flaky", "b.safetensors", 320_000)
    hub.set_fault("org/flaky", "b.safetensors", "corrupt")  # every copy served is damaged

    controller.update_model("org/flaky")
    seen_refs = set()

    def fell_back() -> dict[str, Any] | None:
        seen_refs.add(_ref(models, "org/flaky"))
        record = controller.models["org/flaky"]
        return record if record["status"] == "ready" and record["update_error"] else None

    record = wait_until(fell_back, 30, "the update to fail")
    assert seen_refs == {old}  # offline loaders found the old commit at every moment of the update
    assert record["commit"] == old and record["update_from"] is None and record["error"] is None
    assert "checksum" in record["update_error"]
    assert _verified(hub, models, "org/flaky", old) and _ref(models, "org/flaky") == old
    assert any("the update of org/flaky failed" in line and f"stays ready at commit {old[:7]}" in line
               for line in controller.get_logs())


@pytest.mark.usefixtures("no_periodic_checks")
def test_a_cancelled_update_drops_what_it_fetched_and_keeps_the_old_revision(
        hub: HubServer, start_worker: Any, controller: Controller, settings_env: Settings) -> None:
    models = settings_env.resolved_models_dir
    old = _ready(controller, hub, start_worker, "org/stop")
    hub.update_file("org/stop", "b.safetensors", 2_000_000)
    hub.set_fault("org/stop", "b.safetensors", "stall", cut_at=500_000)

    controller.update_model("org/stop")
    downloading = wait_until(lambda: (r := controller.models["org/stop"])["bytes_done"] > 0
                             and r["status"] == "downloading" and r, 20, "the update to start")
    assert downloading["update_from"]["commit"] == old and _ref(models, "org/stop") == old
    wait_until(lambda: cache.partial_bytes("org/stop", models) > 0, 20, "a part of the new file")
    controller.cancel_download("org/stop")

    record = wait_until(lambda: (r := controller.models["org/stop"])["status"] == "ready" and r, 20, "the cancel")
    assert record["commit"] == old and record["update_error"] == "the update was cancelled"
    assert _revisions(models, "org/stop") == [old] and _ref(models, "org/stop") == old
    wait_until(lambda: cache.partial_bytes("org/stop", models) == 0, 10, "the partial file to go")
    assert _verified(hub, models, "org/stop", old)


@pytest.mark.usefixtures("no_periodic_checks")
def test_check_errors_show_on_the_record_and_change_no_status(
        hub: HubServer, start_worker: Any, controller: Controller) -> None:
    _ready(controller, hub, start_worker, "org/down")
    hub.add_repo("org/gated", {"config.json": b"{}"})
    controller.download_model("org/gated")
    wait_status(controller, "org/gated", {"ready"})
    hub.set_api_fault("org/down", "info", "503")
    hub.add_repo("org/gated", {"config.json": b"{}"}, gated=True)

    asked = time.time()
    controller.check_updates()
    down, gated = (_checked_after(controller, name, asked) for name in ("org/down", "org/gated"))
    assert down["status"] == gated["status"] == "ready"
    assert "HTTP 503" in down["check_error"] and "gated" in gated["check_error"]
    assert not down["update_available"] and not gated["update_available"]
    assert sum("org/down: update check failed" in line for line in controller.get_logs()) == 1

    hub.clear_faults()
    hub.set_api_fault("org/down", "info", "429", times=1, retry_after=2)
    hub.reset_requests()
    asked = time.time()
    controller.check_updates("org/down")
    down = _checked_after(controller, "org/down", asked)
    assert down["check_error"] is None and down["checked_at"] - asked >= 2  # waited out Retry-After
    assert hub.api_calls("info", "org/down") == 2


@pytest.mark.usefixtures("no_periodic_checks")
def test_two_revisions_share_blobs_and_removing_one_keeps_the_others(
        hub: HubServer, start_worker: Any, controller: Controller, settings_env: Settings) -> None:
    models = settings_env.resolved_models_dir
    tagged = hub.add_repo("org/shared", dict(THREE), tags={"v1.0": "main"})
    main = hub.update_file("org/shared", "b.safetensors", 310_000)
    start_worker()
    controller.download_model("org/shared@v1.0")
    wait_status(controller, "org/shared@v1.0", {"ready"})
    hub.reset_requests()
    controller.download_model("org/shared")
    wait_status(controller, "org/shared", {"ready"})
    assert _served(hub) == {("org/shared", "b.safetensors"): 310_000}  # the shared blobs were linked
    blobs = cache.repo_dir("org/shared", models) / "blobs"
    assert len(list(blobs.iterdir())) == 4

    controller.remove_model("org/shared")
    wait_until(lambda: "org/shared" not in controller.models, 20, "the removal")
    assert _revisions(models, "org/shared") == [tagged] and len(list(blobs.iterdir())) == 3
    assert _verified(hub, models, "org/shared", tagged)

    asked = time.time()
    controller.check_updates("org/shared@v1.0")
    record = _checked_after(controller, "org/shared@v1.0", asked)
    assert record["ref_kind"] == "tag" and not record["update_available"]
    with pytest.raises(ConflictError, match=r"follows the tag v1\.0, which never moves"):
        controller.update_model("org/shared@v1.0")
    with pytest.raises(ConflictError, match="a tag that never moves"):
        controller.check_updates("org/shared@v1.0")
    assert main != tagged


def test_the_workers_check_by_themselves_and_read_last_use(
        hub: HubServer, start_worker: Any, controller: Controller, worker_env: dict[str, str],
        settings_env: Settings) -> None:
    worker_env.update({"MODELDEPOT_UPDATE_CHECK_S": "1", "MODELDEPOT_USAGE_SCAN_S": "0.5"})
    old = _ready(controller, hub, start_worker, "org/auto")
    record = wait_until(lambda: (r := controller.models["org/auto"])["checked_at"] and r, 20, "the first check")
    assert record["latest_commit"] == old and not record["update_available"]

    new = hub.update_file("org/auto", "config.json", b'{"v": 2}')
    wait_until(lambda: controller.models["org/auto"]["update_available"], 20, "the periodic check to see it")
    assert controller.models["org/auto"]["latest_commit"] == new

    snapshot = cache.snapshot_dir("org/auto", old, settings_env.resolved_models_dir)
    long_ago = time.time() - 40 * 86400
    for link in snapshot.iterdir():
        os.utime(link.resolve(), (long_ago, long_ago))
    wait_until(lambda: abs((controller.models["org/auto"]["last_used_at"] or 0) - long_ago) < 2, 20,
               "the usage scan to read the access times")


def test_last_use_is_the_latest_access_time_of_the_snapshot_files(
        settings_env: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    models = settings_env.resolved_models_dir
    commit = "a" * 40
    snapshot = models / "models--org--used" / "snapshots" / commit
    (snapshot / "sub").mkdir(parents=True)
    blobs = models / "models--org--used" / "blobs"
    blobs.mkdir()
    times = {"config.json": time.time() - 30 * 86400, "sub/model.safetensors": time.time() - 3 * 86400}
    for index, (path, atime) in enumerate(times.items()):
        blob = blobs / f"blob{index}"
        blob.write_bytes(b"x" * 100)
        os.utime(blob, (atime, atime - 10))
        (snapshot / path).symlink_to(os.path.relpath(blob, (snapshot / path).parent))
    ctx = WorkerContext.for_connection(redis_client)
    ctx.store.force("org/used", ModelRecord.adopted("org/used", "org/used", revision=None, commit=commit,
                                                    size_bytes=200, files=2, found_at=time.time()), None)

    assert usage.scan(ctx) == 1
    record = ctx.store.get("org/used")
    assert record is not None and record.last_used_at == pytest.approx(times["sub/model.safetensors"], abs=1)
    assert usage.scan(ctx) == 0  # nothing moved: nothing written

    (snapshot / "config.json").read_bytes()  # a read through the link; relatime updates a day-old atime too
    if volume.atime_mode(models) == "noatime":
        assert usage.scan(ctx) == 0  # no access times: last use stays the download time
        return
    assert usage.scan(ctx) == 1
    record = ctx.store.get("org/used")
    assert record is not None and time.time() - (record.last_used_at or 0) < 5


def test_lifecycle_refusals_change_nothing(controller: Controller, redis_client: redis.Redis) -> None:
    with pytest.raises(NotFoundError, match="org/nothing is not in the list"):
        controller.pin_model("org/nothing")
    with pytest.raises(NotFoundError):
        controller.update_model("org/nothing")
    with pytest.raises(NotFoundError):
        controller.check_updates("org/nothing")
    controller.store.force("org/pinned", ModelRecord.adopted("org/pinned", "org/pinned", revision=None,
                                                             commit="b" * 40, size_bytes=1, files=1,
                                                             found_at=time.time()), None)
    controller.store.force(f"org/fixed@{'c' * 40}", ModelRecord.adopted(
        f"org/fixed@{'c' * 40}", "org/fixed", revision="c" * 40, commit="c" * 40, size_bytes=1, files=1,
        found_at=time.time()), None)
    wait_until(lambda: len(controller.models) == 2, 5, "the records")
    version = controller.store.read_version()
    with pytest.raises(ConflictError, match=r"follows the commit c{7}.*nothing to update"):
        controller.update_model(f"org/fixed@{'c' * 40}")
    assert controller.store.read_version() == version

    assert controller.pin_model("org/pinned").changed
    assert not controller.pin_model("org/pinned").changed
    assert controller.models["org/pinned"]["pinned"]
    assert controller.unpin_model("org/pinned").changed and not controller.models["org/pinned"]["pinned"]


def _age(ctx: WorkerContext, models: Path, name: str, days: float) -> None:
    """Make ``name``'s files look last read ``days`` ago, and let the usage scan see it."""
    record = ctx.store.get(name)
    assert record is not None and record.commit is not None
    when = time.time() - days * 86400
    for link in cache.snapshot_dir(record.repo_id, record.commit, models).iterdir():
        os.utime(link.resolve(), (when, when - 10))
    usage.refresh(ctx, name, record.repo_id, record.commit)


def _pool(controller: Controller, hub: HubServer, start_worker: Any, names: list[str], size: int) -> None:
    for name in names:
        hub.add_repo(name, {"model.bin": size})
        controller.download_model(name)
    worker = start_worker()
    for name in names:
        wait_status(controller, name, {"ready"})
    worker.stop()


@pytest.mark.usefixtures("no_periodic_checks")
def test_room_refused_then_evicted_oldest_use_first_never_pinned_or_recent(
        hub: HubServer, start_worker: Any, controller: Controller, settings_env: Settings,
        worker_env: dict[str, str], redis_client: redis.Redis) -> None:
    models = settings_env.resolved_models_dir
    _pool(controller, hub, start_worker, ["org/older", "org/pinned", "org/old", "org/recent"], 200_000)
    ctx = WorkerContext.for_connection(redis_client)
    for name, days in (("org/older", 30), ("org/pinned", 40), ("org/old", 10), ("org/recent", 0.001)):
        _age(ctx, models, name, days)
    controller.pin_model("org/pinned")
    hub.add_repo("org/new", {"model.bin": 200_000})
    worker_env["MODELDEPOT_MODELS_QUOTA"] = str(volume.usage(models).models_bytes + 100_000)
    hub.reset_requests()

    worker = start_worker()
    controller.download_model("org/new")
    refused = wait_status(controller, "org/new", {"failed"})
    assert refused["error"].startswith("Not enough room for org/new: it needs 200.0 kB more, but the models quota")
    assert "org/older (200.0 kB, last used 30 days ago)" in refused["error"]
    assert "org/old (" not in refused["error"] and "org/pinned" not in refused["error"]
    assert "MODELDEPOT_EVICT=true" in refused["error"]
    assert _served(hub) == {} and len(controller.models) == 5  # refused before a byte: nothing removed
    worker.stop()

    worker_env["MODELDEPOT_EVICT"] = "true"
    start_worker()
    controller.retry_download("org/new")
    wait_status(controller, "org/new", {"ready"})
    assert sorted(controller.models) == ["org/new", "org/old", "org/pinned", "org/recent"]
    assert not cache.repo_dir("org/older", models).exists()
    logs = controller.get_logs()
    assert any("modeldepot (quota): evicting org/older (200.0 kB, last used 30 days ago) to make room for org/new"
               in line for line in logs)
    assert any("modeldepot (quota): evicted org/older, freed 200.0 kB" in line for line in logs)
    counts, _ = controller.store.read_tallies()
    assert counts["evictions"] == 1 and counts["evicted_bytes"] == 200_000
    wait_snapshot(settings_env.resolved_state_file, lambda doc: "org/older" not in doc["models"])


@pytest.mark.usefixtures("no_periodic_checks")
def test_two_downloads_never_count_the_same_free_bytes(
        hub: HubServer, start_worker: Any, controller: Controller, settings_env: Settings,
        worker_env: dict[str, str]) -> None:
    models = settings_env.resolved_models_dir
    _pool(controller, hub, start_worker, ["org/base"], 100_000)
    for name in ("org/one", "org/two"):
        hub.add_repo(name, {"model.bin": 400_000})
    worker_env["MODELDEPOT_MODELS_QUOTA"] = str(volume.usage(models).models_bytes + 600_000)  # room for one
    worker_env["MODELDEPOT_MAX_BANDWIDTH"] = "400kB"  # a second each: both plan while the other runs
    start_worker()
    start_worker()
    controller.download_model("org/one")
    controller.download_model("org/two")
    ends = [wait_status(controller, name, {"ready", "failed"}, timeout=30) for name in ("org/one", "org/two")]
    assert sorted(r["status"] for r in ends) == ["failed", "ready"]
    refused = next(r for r in ends if r["status"] == "failed")
    assert "Not enough room" in refused["error"]
    assert volume.usage(models).models_bytes <= int(worker_env["MODELDEPOT_MODELS_QUOTA"])


@pytest.mark.usefixtures("no_periodic_checks")
def test_an_eviction_is_called_off_when_the_model_is_read_before_its_files_go(
        hub: HubServer, start_worker: Any, controller: Controller, settings_env: Settings,
        redis_client: redis.Redis) -> None:
    models = settings_env.resolved_models_dir
    _pool(controller, hub, start_worker, ["org/busy"], 100_000)  # no worker runs now: nothing races the test
    ctx = WorkerContext.for_connection(redis_client)
    _age(ctx, models, "org/busy", 10)
    record = ctx.store.get("org/busy")
    assert record is not None
    victim = Victim("org/busy", record.size_bytes, record.idle_since)
    assert eviction.mark(ctx.store, victim, "md-rm-test", reason="for a test", min_idle_s=3600) is not None

    blob = next(cache.snapshot_dir("org/busy", record.commit or "", models).iterdir()).resolve()
    os.utime(blob, (time.time(), time.time() - 10))  # a reader opened it meanwhile
    assert removal.remove(ctx, "org/busy", "md-rm-test") is None

    kept = ctx.store.get("org/busy")
    assert kept is not None and kept.status.value == "ready" and kept.evicted_at is None
    assert time.time() - (kept.last_used_at or 0) < 5 and blob.is_file()
    assert "kept org/busy: it was used" in ctx.store.read_state().logs[-1].what


@pytest.mark.usefixtures("no_periodic_checks")
def test_prune_removes_through_the_removal_jobs_down_to_the_quota(
        hub: HubServer, start_worker: Any, settings_env: Settings, redis_client: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    models = settings_env.resolved_models_dir
    with Controller(settings_env) as controller:
        _pool(controller, hub, start_worker, ["org/p1", "org/p2", "org/p3"], 100_000)
    ctx = WorkerContext.for_connection(redis_client)
    for name, days in (("org/p1", 5), ("org/p2", 9), ("org/p3", 1)):
        _age(ctx, models, name, days)
    monkeypatch.setenv("MODELDEPOT_MODELS_QUOTA", str(volume.usage(models).models_bytes - 150_000))
    reset_settings()
    with Controller(get_settings()) as controller:
        dry = controller.prune(dry_run=True)
        assert [v.name for v in dry.plan.victims] == ["org/p2", "org/p1"] and dry.removing == ()
        assert all(r["status"] == "ready" for r in controller.models.values())
        start_worker()
        done = controller.prune(requested_by="alice")
        assert done.removing == ("org/p2", "org/p1")
        wait_until(lambda: sorted(controller.models) == ["org/p3"], 20, "the removals")
        assert sum("modeldepot (quota): evicted" in line for line in controller.get_logs()) == 2
        assert controller.prune(dry_run=True).plan.victims == ()


def _hold_the_room_lock(redis_url: str, prefix: str, held: Any) -> None:
    from app.core.keys import Keys
    from app.core.store import Store

    store = Store(redis.Redis.from_url(redis_url), Keys(prefix), sender="doomed")
    with store.holding_room():
        held.set()
        time.sleep(3600)


def test_a_room_lock_holder_killed_inside_frees_the_lock_within_seconds(
        settings_env: Settings, redis_client: redis.Redis) -> None:
    import multiprocessing

    from app.core.keys import Keys
    from app.core.store import Store

    context = multiprocessing.get_context("spawn")
    held = context.Event()
    holder = context.Process(target=_hold_the_room_lock,
                             args=(settings_env.redis_url, settings_env.key_prefix, held))
    holder.start()
    assert held.wait(30)
    time.sleep(5)  # past a third of the TTL: it was renewed at least once
    holder.kill()  # SIGKILL, as RQ's stop-job command kills a cancelled download's work-horse
    holder.join()
    store = Store(redis_client, Keys(settings_env.key_prefix), sender="next")
    with store.holding_room(wait_s=20):  # a lock kept for minutes would make this a ConflictError
        pass


def test_update_many_writes_in_one_round_trip_and_redoes_what_another_writer_beat(
        settings_env: Settings, redis_client: redis.Redis) -> None:
    from app.core.keys import Keys
    from app.core.store import LogEntry, Store

    store = Store(redis_client, Keys(settings_env.key_prefix), sender="scan")
    other = Store(redis_client, Keys(settings_env.key_prefix), sender="other")
    for name in ("org/a", "org/b", "org/c"):
        store.force(name, ModelRecord.adopted(name, name, revision=None, commit="d" * 40, size_bytes=1, files=1,
                                              found_at=1.0), None)

    def used(at: float, *, race: bool = False) -> Any:
        def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
            assert current is not None
            if race and not current.pinned:  # another writer changes the record after it was read
                other.update(current.name, lambda c: (c.pinned_as(True) if c else None, None))
            return current.used(at), None
        return mutate

    def unchanged(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        raise Unchanged

    before = store.read_version()
    changes = store.update_many({"org/a": used(100.0), "org/b": used(200.0, race=True), "org/c": unchanged})
    assert sorted(c.record.name for c in changes) == ["org/a", "org/b"]  # org/c: unchanged, not written
    b = store.get("org/b")
    assert b is not None and b.pinned and b.last_used_at == 200.0  # the pin was kept, the use redone on top
    assert store.read_version() == before + 3
    assert store.update_many({}) == []


def test_periodic_checks_are_spread_over_the_interval_least_recently_checked_first(
        settings_env: Settings, redis_client: redis.Redis) -> None:
    from workers.lifecycle.upkeep import due_checks

    ctx = WorkerContext.for_connection(redis_client)
    now = time.time()
    for i in range(100):
        name = f"org/m{i:03d}"
        record = ModelRecord.adopted(name, name, revision=None, commit="e" * 40, size_bytes=1, files=1, found_at=now)
        checked = {0: None, 1: now - 7200, 2: now - 60}[i % 3]  # never, due, recent
        ctx.store.force(name, record.model_copy(update={"checked_at": checked}), None)
    fixed = f"org/fixed@{'f' * 40}"
    ctx.store.force(fixed, ModelRecord.adopted(fixed, "org/fixed", revision="f" * 40, commit="f" * 40,
                                               size_bytes=1, files=1, found_at=now), None)

    assert due_checks(ctx, interval_s=3600, tick_s=36, now=now) == ["org/m000"]  # 100 models: 1 a tick
    ten = due_checks(ctx, interval_s=3600, tick_s=360, now=now)
    assert ten == [f"org/m{i:03d}" for i in range(0, 30, 3)]  # never checked first, by name
    assert len(due_checks(ctx, interval_s=3600, tick_s=3600, now=now)) == 67  # every due one, no recent one
    assert fixed not in due_checks(ctx, interval_s=3600, tick_s=3600, now=now)
