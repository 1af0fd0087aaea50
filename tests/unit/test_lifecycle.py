"""A record's lifecycle: each transition of ``ModelRecord``, the job guard, and what ``Store.update`` reports."""

from __future__ import annotations

import json
import time
from pathlib import Path

import fakeredis
import pytest

from app.core import records
from app.core.errors import ConflictError
from app.core.jobqueue import JobQueue
from app.core.records import ModelRecord, RetryState, Status, Unchanged, owned
from app.core.seeding import seed_from_snapshot
from app.core.settings import Settings
from app.core.status import WorkerInfo, live_workers
from app.core.store import Change, LogEntry, Store
from workers.jobs import Downloaded

NAME = "org/model"
JOB = "md-dl-1"


def record(status: Status, **fields: object) -> ModelRecord:
    return ModelRecord.model_validate({"name": NAME, "repo_id": NAME, "status": status, "job_id": JOB, "attempt": 1,
                                       **fields})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(redis_url="redis://fake", data_dir=tmp_path)


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store.for_settings(fakeredis.FakeRedis(), settings, sender="test")


# ---- transitions -------------------------------------------------------------------------------------------


def test_requested_is_a_first_queued_attempt() -> None:
    new = ModelRecord.requested(NAME, NAME, job_id=JOB, requested_by="alice", revision="v1", allow_patterns=["*.json"])
    assert (new.status, new.job_id, new.attempt, new.requested_by, new.revision) == (
        Status.QUEUED, JOB, 1, "alice", "v1")
    assert new.allow_patterns == ["*.json"] and new.requested_at and new.finished_at is None


def test_adopted_is_ready_and_counts_what_is_on_disk() -> None:
    found = ModelRecord.adopted(NAME, NAME, revision=None, commit="c" * 40, size_bytes=500, files=3, found_at=12.0)
    assert (found.status, found.bytes_done, found.bytes_total, found.files_done, found.files_total) == (
        Status.READY, 500, 500, 3, 3)
    assert found.requested_by == "found on disk" and found.requested_at == 12.0 and found.finished_at


def test_claim_starts_the_download_and_returns_a_new_record() -> None:
    queued = record(Status.QUEUED, error="left over")
    claimed = queued.claim()
    assert claimed.status is Status.DOWNLOADING and claimed.error is None
    assert queued.status is Status.QUEUED and queued.error == "left over"  # transitions never change their input


@pytest.mark.parametrize("before", [
    record(Status.QUEUED, cancel_requested=True), record(Status.QUEUED, pause_requested=True),
    record(Status.CANCELLED), record(Status.PAUSED), record(Status.READY), record(Status.REMOVING),
])
def test_claim_refused_once_stopped_or_asked_to_stop(before: ModelRecord) -> None:
    with pytest.raises(Unchanged):
        before.claim()


def test_owned_is_the_one_job_guard() -> None:
    mine = record(Status.DOWNLOADING)
    assert owned(mine, JOB) is mine and mine.owned_by(JOB) and not mine.owned_by("md-dl-other")
    for late in (None, mine.model_copy(update={"job_id": "md-dl-new"})):
        with pytest.raises(Unchanged):
            owned(late, JOB)


def test_planned_and_progressed_only_while_downloading() -> None:
    running = record(Status.DOWNLOADING, retry=RetryState(attempt=1, in_s=1, cause="HTTP 503", since=0))
    planned = running.planned(commit="c" * 40, bytes_total=100, files_total=4, bytes_needed=30)
    assert (planned.commit, planned.bytes_total, planned.files_total, planned.bytes_done, planned.retry) == (
        "c" * 40, 100, 4, 70, None)
    retry = RetryState(attempt=2, in_s=4, cause="HTTP 503", since=1)
    ticked = planned.progressed(bytes_done=80, bytes_total=100, files_done=2, files_total=4, speed_bps=10.0,
                                eta_s=2.0, retry=retry)
    assert (ticked.bytes_done, ticked.files_done, ticked.speed_bps, ticked.eta_s, ticked.retry) == (
        80, 2, 10.0, 2.0, retry)
    for other in (Status.QUEUED, Status.PAUSED, Status.READY):
        with pytest.raises(Unchanged):
            record(other).planned(commit="c", bytes_total=1, files_total=1, bytes_needed=1)
        with pytest.raises(Unchanged):
            record(other).progressed(bytes_done=1, bytes_total=1, files_done=1, files_total=1, speed_bps=0,
                                     eta_s=None, retry=None)


def test_ready_lists_every_field_of_a_finished_download() -> None:
    running = record(Status.DOWNLOADING, bytes_done=10, files_done=1, speed_bps=5.0, eta_s=3.0, error="x",
                     cancel_requested=True, pause_requested=True,
                     retry=RetryState(attempt=1, in_s=1, cause="reset", since=0))
    done = running.ready(commit="c" * 40, size_bytes=120, bytes_total=100, files_total=4)
    assert (done.status, done.commit, done.size_bytes) == (Status.READY, "c" * 40, 120)
    assert (done.bytes_done, done.bytes_total, done.files_done, done.files_total) == (100, 100, 4, 4)
    assert (done.speed_bps, done.eta_s, done.error, done.retry) == (0.0, None, None, None)
    assert not done.cancel_requested and not done.pause_requested and done.finished_at
    with pytest.raises(Unchanged):
        record(Status.QUEUED).ready(commit="c", size_bytes=1, bytes_total=1, files_total=1)


@pytest.mark.parametrize(("status", "reason", "finished"), [
    (Status.FAILED, "HTTP 404", True), (Status.CANCELLED, None, True), (Status.PAUSED, None, False),
])
@pytest.mark.parametrize("under_way", [Status.QUEUED, Status.DOWNLOADING])
def test_stopped_is_one_place_for_failed_cancelled_and_paused(status: Status, reason: str | None, finished: bool,
                                                             under_way: Status) -> None:
    running = record(under_way, speed_bps=5.0, eta_s=3.0, pause_requested=True, cancel_requested=True,
                     bytes_done=40, retry=RetryState(attempt=1, in_s=1, cause="reset", since=0))
    ended = running.stopped(status, reason)
    assert (ended.status, ended.error, ended.speed_bps, ended.eta_s, ended.retry) == (status, reason, 0.0, None, None)
    assert not ended.cancel_requested and not ended.pause_requested and ended.bytes_done == 40
    assert bool(ended.finished_at) is finished  # a paused download is not finished


@pytest.mark.parametrize("before", [Status.PAUSED, Status.READY, Status.FAILED, Status.CANCELLED, Status.REMOVING])
def test_stopped_refused_once_the_download_ended(before: Status) -> None:
    with pytest.raises(Unchanged):
        record(before).stopped(Status.CANCELLED)


def test_stopped_only_as_a_stopped_status() -> None:
    with pytest.raises(ValueError, match="cannot stop as ready"):
        record(Status.DOWNLOADING).stopped(Status.READY)


def test_cancelled_while_paused() -> None:
    cancelled = record(Status.PAUSED, bytes_done=40).cancelled_while_paused()
    assert cancelled.status is Status.CANCELLED and cancelled.finished_at and cancelled.bytes_done == 40
    with pytest.raises(Unchanged):
        record(Status.QUEUED).cancelled_while_paused()


def test_requeued_is_the_next_attempt_under_a_new_job() -> None:
    dead = record(Status.DOWNLOADING, speed_bps=5.0, eta_s=3.0, files_done=2, requested_by="alice",
                  retry=RetryState(attempt=1, in_s=1, cause="reset", since=0))
    again = dead.requeued("md-dl-2", 2)
    assert (again.status, again.job_id, again.attempt, again.speed_bps, again.eta_s, again.retry) == (
        Status.QUEUED, "md-dl-2", 2, 0.0, None, None)
    assert again.files_done == 2 and again.requested_by == "alice"
    with pytest.raises(Unchanged):
        record(Status.FAILED).requeued("md-dl-2", 2)


@pytest.mark.parametrize("stopped", [Status.FAILED, Status.CANCELLED, Status.PAUSED])
def test_rerequested_queues_a_stopped_download_as_a_first_attempt(stopped: Status) -> None:
    before = record(stopped, attempt=3, bytes_done=40, bytes_total=100, files_done=3, error="HTTP 500",
                    finished_at=1.0, pause_requested=True)
    again = before.rerequested("md-dl-2", requested_by="bob")
    assert (again.status, again.job_id, again.attempt, again.requested_by) == (Status.QUEUED, "md-dl-2", 1, "bob")
    assert (again.bytes_done, again.bytes_total, again.files_done) == (40, 100, 0)  # the bytes on disk are resumed
    assert again.error is None and again.finished_at is None and not again.pause_requested


@pytest.mark.parametrize("status", [Status.QUEUED, Status.DOWNLOADING, Status.READY, Status.REMOVING])
def test_rerequested_refused_unless_stopped(status: Status) -> None:
    with pytest.raises(ConflictError, match="only a stopped download can be queued again"):
        record(status).rerequested("md-dl-2", requested_by="bob")


@pytest.mark.parametrize(("before", "cancel"), [
    (record(Status.DOWNLOADING), True), (record(Status.QUEUED), True), (record(Status.READY), False),
    (record(Status.PAUSED), False), (record(Status.REMOVING, cancel_requested=True), True),
])
def test_removing_asks_a_download_under_way_to_cancel(before: ModelRecord, cancel: bool) -> None:
    removing = before.removing("md-rm-1")
    assert (removing.status, removing.job_id, removing.cancel_requested) == (Status.REMOVING, "md-rm-1", cancel)
    assert before.active_job == (JOB if before.status in records.UNDER_WAY else None)


def test_removal_failed_and_broken() -> None:
    failed = record(Status.REMOVING).removal_failed("disk error")
    assert (failed.status, failed.error) == (Status.FAILED, "disk error")
    with pytest.raises(Unchanged):
        record(Status.FAILED).removal_failed("again")

    ready = record(Status.READY, commit="a" * 40, size_bytes=100)
    corrupt = ready.broken("a" * 40, "checksum mismatch")
    assert (corrupt.status, corrupt.error, corrupt.size_bytes) == (Status.FAILED, "checksum mismatch", 100)
    assert ready.broken("a" * 40, "gone", files_gone=True).size_bytes == 0
    with pytest.raises(Unchanged):
        ready.broken("b" * 40, "another commit")
    with pytest.raises(Unchanged):
        record(Status.DOWNLOADING, commit="a" * 40).broken("a" * 40, "not ready")


@pytest.mark.parametrize(("status", "flag"), [(Status.CANCELLED, "cancel_requested"),
                                              (Status.PAUSED, "pause_requested")])
def test_stop_requested_sets_the_flag_once(status: Status, flag: str) -> None:
    running = record(Status.DOWNLOADING)
    asked = running.stop_requested(status)
    assert getattr(asked, flag) and asked.status is Status.DOWNLOADING and asked.stop_asked is status
    with pytest.raises(Unchanged):
        asked.stop_requested(status)
    with pytest.raises(Unchanged):
        record(Status.READY).stop_requested(status)


def test_a_cancel_wins_over_a_pause() -> None:
    assert record(Status.DOWNLOADING, pause_requested=True, cancel_requested=True).stop_asked is Status.CANCELLED
    assert record(Status.DOWNLOADING).stop_asked is None


def test_transitions_are_checked_against_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {**records._ALLOWED, Status.DOWNLOADING: frozenset({Status.DOWNLOADING})}
    monkeypatch.setattr(records, "_ALLOWED", table)
    with pytest.raises(ConflictError, match="it cannot become ready now"):
        record(Status.DOWNLOADING).ready(commit="c", size_bytes=1, bytes_total=1, files_total=1)


# ---- Store.update reports what changed ---------------------------------------------------------------------


def test_update_returns_the_change(store: Store) -> None:
    queued = record(Status.QUEUED)
    created = store.update(NAME, lambda current: (queued, LogEntry("alice", "queued")))
    assert isinstance(created, Change) and created.before is None and created.after == queued
    assert created.event["v"] == 1 and created.event["record"]["status"] == "queued"

    change = store.update(NAME, lambda current: (owned(current, JOB).claim(), None))
    assert change is not None and change.before == queued and change.record.status is Status.DOWNLOADING
    assert change.after is not None and change.after.updated_at >= queued.updated_at
    assert store.get(NAME) == change.after and store.read_version() == 2


def test_a_refused_transition_changes_nothing(store: Store) -> None:
    store.force(NAME, record(Status.READY, commit="c" * 40), None)
    before, version = store.get(NAME), store.read_version()
    assert store.update(NAME, lambda current: (owned(current, JOB).claim(), None)) is None
    assert store.update(NAME, lambda current: (owned(current, "md-dl-other"), None)) is None
    with pytest.raises(ConflictError):
        store.update(NAME, lambda current: (owned(current, JOB).rerequested("md-dl-2", requested_by="x"), None))
    assert store.get(NAME) == before and store.read_version() == version


def test_a_deletion_has_no_record_after(store: Store) -> None:
    store.force(NAME, record(Status.REMOVING), None)
    change = store.update(NAME, lambda current: (None, LogEntry("worker", "removed")))
    assert change is not None and change.after is None and change.before is not None
    with pytest.raises(LookupError, match="deleted"):
        assert change.record


# ---- the job result, seeding, liveness ---------------------------------------------------------------------


def test_downloaded_round_trips_through_the_json_result() -> None:
    done = Downloaded(commit="c" * 40, size_bytes=120, bytes_total=100, files_total=4, bytes_needed=30,
                      started_at=12.5)
    assert Downloaded.from_result(json.loads(json.dumps(done.to_result()))) == done
    assert Downloaded.from_result(None) is None  # a job with nothing to do
    with pytest.raises(TypeError):
        Downloaded.from_result("skipped")


def test_seed_from_snapshot_only_into_an_empty_redis(store: Store, settings: Settings) -> None:
    state_file = settings.resolved_state_file
    state_file.parent.mkdir(parents=True, exist_ok=True)
    saved = record(Status.READY, commit="c" * 40).to_dict()
    state_file.write_text(json.dumps({"format": 1, "version": 7, "saved_at": time.time(), "models": {NAME: saved},
                                      "logs": []}))
    assert seed_from_snapshot(store, state_file)
    state = store.read_state()
    assert state.version == 7 and state.models[NAME]["status"] == "ready"
    assert "state rebuilt from controller_state.json" in state.logs[-1].what
    assert not seed_from_snapshot(store, state_file)


def test_seed_without_a_snapshot_starts_empty(store: Store, tmp_path: Path) -> None:
    assert seed_from_snapshot(store, tmp_path / "none.json")
    assert store.is_initialized() and store.read_state().models == {}


def test_is_alive_follows_the_heartbeat_key(settings: Settings) -> None:
    connection = fakeredis.FakeRedis()
    jobs = JobQueue(connection, settings)
    assert not jobs.is_alive(JOB)
    connection.set(jobs.keys.heartbeat(JOB), "1", px=10_000)
    assert jobs.is_alive(JOB)


def test_live_workers_counts_the_live_ones_on_a_queue() -> None:
    def worker(name: str, queues: list[str], alive: bool) -> WorkerInfo:
        return WorkerInfo(name, "host", 1, queues, "idle", None, 0.0, alive)

    workers = [worker("a", ["md-downloads"], True), worker("b", ["md-downloads", "md-maintenance"], False),
               worker("c", ["md-maintenance"], True)]
    assert (live_workers(workers, "md-downloads"), live_workers(workers, "md-maintenance")) == (1, 1)
