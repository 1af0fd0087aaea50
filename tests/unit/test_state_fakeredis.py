"""Fast unit tests of transitions, dedup and event handling on fakeredis (Lua via lupa)."""

from __future__ import annotations

import json
from pathlib import Path

import fakeredis
import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from app.core.controller import Controller
from app.core.errors import ConflictError, InvalidInputError, NotFoundError
from app.core.records import Status, Unchanged, check_transition
from app.core.settings import Settings, get_settings
from app.core.store import DURATIONS_KEPT, LogEntry, State, Tally
from app.core.sync import Applied, Replica


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    settings = Settings(redis_url="redis://fake", data_dir=tmp_path, log_size=10)
    return Controller(settings, fakeredis.FakeRedis(), listen=False)


def test_download_creates_one_queued_record_and_a_job(controller: Controller) -> None:
    outcome = controller.download_model("org/model", requested_by="alice")
    assert outcome.changed
    [record] = controller.fetch_models()
    assert record["status"] == "queued"
    assert record["requested_by"] == "alice"
    assert controller.jobs.exists(outcome.job_id)
    assert "alice: queued download of org/model" in controller.get_logs()[-1]


def test_jobs_follow_the_controllers_settings_not_the_environment(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://fake", data_dir=tmp_path, key_prefix="other", job_timeout=123)
    assert get_settings().job_timeout != 123 and get_settings().key_prefix != "other"
    controller = Controller(settings, fakeredis.FakeRedis(), listen=False)
    outcome = controller.download_model("org/model")
    job = Job.fetch(outcome.job_id, connection=controller.redis, serializer=JSONSerializer)
    assert job.timeout == 123 and job.origin == "other-downloads"


def test_second_download_returns_the_existing_job(controller: Controller) -> None:
    first = controller.download_model("org/model")
    second = controller.download_model("org/model")
    assert not second.changed and second.job_id == first.job_id
    assert len(controller.fetch_models()) == 1
    assert len(controller.jobs.downloads) == 1


def test_revision_makes_its_own_record(controller: Controller) -> None:
    controller.download_model("org/model@v1")
    controller.download_model("org/model", revision="v2")
    assert [m["name"] for m in controller.fetch_models()] == ["org/model@v1", "org/model@v2"]


def test_two_revisions_is_an_error(controller: Controller) -> None:
    with pytest.raises(InvalidInputError):
        controller.download_model("org/model@v1", revision="v2")
    assert controller.fetch_models() == []


@pytest.mark.parametrize("bad", ["", "model", "../etc/passwd", "org/../../etc", "a/b/c", "org/x\x00"])
def test_bad_names_change_nothing(controller: Controller, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        controller.download_model(bad)
    assert controller.fetch_models() == [] and controller.version == 0
    assert len(controller.jobs.downloads) == 0


def test_cancel_queued_takes_it_off_the_queue(controller: Controller, tmp_path: Path) -> None:
    controller.download_model("org/model")
    outcome = controller.cancel_download("org/model")
    assert "Cancelled" in outcome.message
    assert controller.fetch_models()[0]["status"] == "cancelled"
    assert len(controller.jobs.downloads) == 0
    saved = json.loads((tmp_path / "controller_state.json").read_text())
    assert saved["models"]["org/model"]["status"] == "cancelled"


def test_cancel_or_remove_unknown_model(controller: Controller) -> None:
    with pytest.raises(NotFoundError):
        controller.cancel_download("org/none")
    with pytest.raises(NotFoundError):
        controller.remove_model("org/none")


def test_retry_only_failed_or_cancelled(controller: Controller) -> None:
    controller.download_model("org/model")
    with pytest.raises(ConflictError):
        controller.retry_download("org/model")
    controller.cancel_download("org/model")
    assert controller.retry_download("org/model").changed
    assert controller.fetch_models()[0]["status"] == "queued"


def test_remove_enqueues_a_removal(controller: Controller) -> None:
    controller.download_model("org/model")
    controller.cancel_download("org/model")
    outcome = controller.remove_model("org/model")
    assert controller.fetch_models()[0]["status"] == "removing"
    assert len(controller.jobs.maintenance) == 1
    assert not controller.remove_model("org/model").changed
    with pytest.raises(ConflictError):
        controller.download_model("org/model")
    assert outcome.job_id


def test_log_is_bounded(controller: Controller) -> None:
    for i in range(25):
        controller.add_log(f"line {i}")
    assert len(controller.get_logs()) == 10
    assert controller.redis.llen(controller.keys.logs) == 10
    assert controller.get_logs()[-1].endswith("line 24")


@pytest.mark.parametrize(("old", "new", "ok"), [
    (None, Status.QUEUED, True), (Status.READY, Status.DOWNLOADING, False),
    (Status.REMOVING, Status.QUEUED, False), (Status.REMOVING, None, True), (Status.READY, None, False),
    (Status.DOWNLOADING, Status.READY, True), (Status.CANCELLED, Status.QUEUED, True),
])
def test_transitions(old: Status | None, new: Status | None, ok: bool) -> None:
    if ok:
        check_transition("m", old, new)
    else:
        with pytest.raises(ConflictError):
            check_transition("m", old, new)


def _event(v: int, name: str = "a/b", status: str = "queued") -> dict[str, object]:
    return {"v": v, "type": "model", "name": name, "record": {"name": name, "status": status}, "log": None}


def test_replica_applies_in_order_and_reports_gaps() -> None:
    replica = Replica(log_size=5)
    replica.reset(State(3, {}, [LogEntry("x", "y")]))
    assert replica.apply(_event(3)) is Applied.STALE
    assert replica.apply(_event(4)) is Applied.APPLIED
    assert replica.apply(_event(6)) is Applied.GAP
    assert replica.version == 4 and replica.models["a/b"]["status"] == "queued"
    delete = {"v": 5, "type": "model", "name": "a/b", "record": None,
              "log": {"ts": 0, "who": "w", "what": "removed", "level": "info"}}
    assert replica.apply(delete) is Applied.APPLIED
    assert replica.models == {} and replica.logs[-1].endswith("w: removed")


def test_events_carry_version_kind_and_record(controller: Controller) -> None:
    pubsub = controller.redis.pubsub()
    pubsub.subscribe(controller.keys.events_channel)
    pubsub.get_message(timeout=1)
    controller.download_model("org/model")
    message = pubsub.get_message(timeout=1)
    event = json.loads(message["data"])
    assert event["v"] == controller.version and event["type"] == "model"
    assert event["record"]["status"] == "queued" and event["name"] == "org/model"
    assert controller.redis.xlen(controller.keys.events_stream) == 1


def test_tally_is_counted_only_with_the_write_it_belongs_to(controller: Controller) -> None:
    controller.download_model("org/model")
    store, keys = controller.store, controller.keys

    def unchanged(current: object) -> tuple[None, None]:
        raise Unchanged

    assert store.update("org/model", unchanged, tally=Tally({"downloads_started": 1}, duration_s=1.0)) is None
    assert controller.redis.hgetall(keys.metrics) == {} and controller.redis.llen(keys.durations) == 0

    def start(current):  # type: ignore[no-untyped-def]
        return current.model_copy(update={"status": Status.DOWNLOADING}), None

    for _ in range(2):
        store.update("org/model", start, tally=Tally({"downloads_started": 1, "bytes_downloaded": 5},
                                                      duration_s=2.5))
    assert controller.redis.hgetall(keys.metrics) == {b"downloads_started": b"2", b"bytes_downloaded": b"10"}
    assert controller.redis.lrange(keys.durations, 0, -1) == [b"2.500", b"2.500"]
    for _ in range(DURATIONS_KEPT + 5):
        store.update("org/model", start, tally=Tally(duration_s=1.0))
    assert controller.redis.llen(keys.durations) == DURATIONS_KEPT
