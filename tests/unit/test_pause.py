"""Pause, resume, and how cancel, retry, remove and the watchdog treat paused downloads (fakeredis, Lua via lupa)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from app.core.controller import Controller
from app.core.errors import ConflictError
from app.core.jobqueue import DISCARD_FUNC, REMOVE_FUNC
from app.core.records import ModelRecord, RetryState, Status
from app.core.settings import Settings
from app.web.ui.access import Access
from app.web.ui.actions import Actions, removal_question
from workers.watchdog import Watchdog

NAME = "org/model"
GONE_JOB = "md-dl-taken-by-a-worker"  # no such RQ job: the queue cannot take it back


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(redis_url="redis://fake", data_dir=tmp_path, log_size=50)


@pytest.fixture
def controller(settings: Settings) -> Controller:
    return Controller(settings, fakeredis.FakeRedis(), listen=False)


@pytest.fixture
def stop_commands(controller: Controller, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Job ids RQ's stop-job command was sent for (the command itself needs a worker running the job)."""
    sent: list[str] = []
    real = controller.jobs.stop_running

    def spy(job_id: str) -> bool:
        sent.append(job_id)
        return real(job_id)

    monkeypatch.setattr(controller.jobs, "stop_running", spy)
    return sent


def put(controller: Controller, status: Status, *, age: float = 0.0, **fields: Any) -> ModelRecord:
    """Write a record as a worker or an earlier action left it, ``age`` seconds after its last change."""
    fields = {"job_id": GONE_JOB, "commit": "c" * 40, "attempt": 1, **fields}
    record = ModelRecord(name=NAME, repo_id=NAME, status=status, **fields)
    controller.store.force(NAME, record, None)
    if age:
        stale = record.model_copy(update={"updated_at": time.time() - age})
        controller.redis.hset(controller.keys.models, NAME, stale.to_json())
    controller.replica.reset(controller.store.read_state(), force=True)
    return record


def saved_status(tmp_path: Path) -> str:
    return json.loads((tmp_path / "controller_state.json").read_text())["models"][NAME]["status"]


def maintenance_funcs(controller: Controller) -> list[tuple[str, tuple[Any, ...]]]:
    return [(job.func_name, tuple(job.args)) for job in controller.jobs.maintenance.jobs]


# ---- pause -----------------------------------------------------------------------------------------------


def test_pause_a_queued_download_takes_it_off_the_queue_at_once(controller: Controller, tmp_path: Path,
                                                                stop_commands: list[str]) -> None:
    queued = controller.download_model(NAME)
    outcome = controller.pause_download(NAME, requested_by="alice")
    assert (outcome.message, outcome.changed, outcome.job_id) == (f"Paused {NAME}.", True, queued.job_id)
    record = controller.get_model(NAME)
    assert record["status"] == "paused" and record["finished_at"] is None and not record["pause_requested"]
    assert len(controller.jobs.downloads) == 0 and controller.jobs.maintenance.jobs == []  # files stay
    assert controller.get_logs()[-1].endswith(f"alice: paused download of {NAME} (was queued)")
    assert saved_status(tmp_path) == "paused" and stop_commands == []


def test_pause_a_running_download_asks_its_job_and_sends_no_stop_command(controller: Controller,
                                                                        stop_commands: list[str]) -> None:
    put(controller, Status.DOWNLOADING, bytes_done=10, bytes_total=100)
    outcome = controller.pause_download(NAME, requested_by="alice")
    assert (outcome.message, outcome.changed) == (f"Pausing {NAME}…", True)
    record = controller.get_model(NAME)
    assert record["status"] == "downloading" and record["pause_requested"] and not record["cancel_requested"]
    assert controller.get_logs()[-1].endswith(f"alice: asked to pause the download of {NAME}")
    assert stop_commands == []  # the job stops on the flag; the watchdog stops it only if it does not

    version = controller.version
    again = controller.pause_download(NAME)
    assert not again.changed and again.message == f"{NAME} is already pausing; wait a moment."
    assert controller.version == version


def test_pause_a_queued_download_a_worker_already_took_sets_the_flag(controller: Controller) -> None:
    put(controller, Status.QUEUED)  # its job is no longer waiting in the queue
    assert controller.pause_download(NAME).message == f"Pausing {NAME}…"
    record = controller.get_model(NAME)
    assert record["status"] == "queued" and record["pause_requested"]


@pytest.mark.parametrize(("status", "message"), [
    (Status.READY, f"{NAME} is ready; only queued or downloading downloads can be paused."),
    (Status.FAILED, f"{NAME} is failed; only queued or downloading downloads can be paused."),
    (Status.CANCELLED, f"{NAME} is cancelled; only queued or downloading downloads can be paused."),
    (Status.REMOVING, f"{NAME} is removing; only queued or downloading downloads can be paused."),
    (Status.PAUSED, f"{NAME} is already paused; resume it to go on."),
])
def test_pause_refused_changes_nothing(controller: Controller, status: Status, message: str) -> None:
    put(controller, status)
    before, version = controller.store.get(NAME), controller.version
    with pytest.raises(ConflictError) as refused:
        controller.pause_download(NAME)
    assert str(refused.value) == message
    assert controller.store.get(NAME) == before and controller.version == version


def test_a_download_being_cancelled_cannot_be_paused(controller: Controller) -> None:
    put(controller, Status.DOWNLOADING, cancel_requested=True)
    version = controller.version
    with pytest.raises(ConflictError, match="is being cancelled; it cannot be paused"):
        controller.pause_download(NAME)
    assert controller.version == version and not controller.get_model(NAME)["pause_requested"]


# ---- resume and retry -----------------------------------------------------------------------------------


def test_resume_queues_a_new_job_and_keeps_the_bytes(controller: Controller) -> None:
    retry = RetryState(attempt=3, in_s=8, cause="HTTP 503", since=time.time())
    put(controller, Status.PAUSED, job_id="md-dl-old", attempt=2, bytes_done=40, bytes_total=100, files_done=3,
        files_total=5, error="old", pause_requested=True, retry=retry)
    outcome = controller.resume_download(NAME, requested_by="bob")
    assert outcome.changed and outcome.job_id not in (None, "md-dl-old")
    assert outcome.message == f"Resumed {NAME}; it goes on from what is already downloaded."
    record = controller.get_model(NAME)
    assert (record["status"], record["job_id"], record["attempt"]) == ("queued", outcome.job_id, 1)
    assert (record["bytes_done"], record["bytes_total"], record["files_done"]) == (40, 100, 0)
    assert not record["pause_requested"] and record["retry"] is None and record["error"] is None
    assert record["requested_by"] == "bob"
    assert controller.jobs.is_waiting(outcome.job_id)
    assert controller.get_logs()[-1].endswith(f"bob: resumed download of {NAME}")


@pytest.mark.parametrize(("status", "hint"), [
    (Status.QUEUED, ""), (Status.DOWNLOADING, ""), (Status.READY, ""), (Status.REMOVING, ""),
    (Status.FAILED, " (retry a failed or cancelled one instead)"),
    (Status.CANCELLED, " (retry a failed or cancelled one instead)"),
])
def test_resume_refused_changes_nothing(controller: Controller, status: Status, hint: str) -> None:
    put(controller, status)
    before, version, queued = controller.store.get(NAME), controller.version, len(controller.jobs.downloads)
    with pytest.raises(ConflictError) as refused:
        controller.resume_download(NAME)
    assert str(refused.value) == f"{NAME} is {status.value}; only paused downloads can be resumed{hint}."
    assert controller.store.get(NAME) == before and controller.version == version
    assert len(controller.jobs.downloads) == queued


def test_retry_keeps_the_bytes_on_disk_and_refuses_a_paused_download(controller: Controller) -> None:
    put(controller, Status.FAILED, bytes_done=40, bytes_total=100, files_done=3, error="HTTP 500")
    outcome = controller.retry_download(NAME)
    record = controller.get_model(NAME)
    assert (record["status"], record["bytes_done"], record["files_done"], record["error"]) == ("queued", 40, 0, None)
    assert controller.jobs.is_waiting(outcome.job_id)

    put(controller, Status.PAUSED)
    version = controller.version
    with pytest.raises(ConflictError, match="is paused; only failed or cancelled downloads can be retried; "
                                            "resume it instead"):
        controller.retry_download(NAME)
    assert controller.version == version


# ---- cancel and remove -----------------------------------------------------------------------------------


def test_cancel_a_paused_download_deletes_its_files(controller: Controller, tmp_path: Path,
                                                    stop_commands: list[str]) -> None:
    put(controller, Status.PAUSED, job_id="md-dl-old", bytes_done=40, bytes_total=100)
    outcome = controller.cancel_download(NAME, requested_by="alice")
    assert (outcome.message, outcome.changed) == (f"Cancelled {NAME}.", True)
    record = controller.get_model(NAME)
    assert record["status"] == "cancelled" and record["finished_at"]
    assert maintenance_funcs(controller) == [(DISCARD_FUNC, (NAME, "c" * 40))]
    assert controller.get_logs()[-1].endswith(f"alice: cancelled download of {NAME} (was paused)")
    assert saved_status(tmp_path) == "cancelled" and stop_commands == []


def test_cancel_a_resumed_download_still_queued_deletes_the_kept_files(controller: Controller) -> None:
    put(controller, Status.PAUSED, bytes_done=40, bytes_total=100)
    controller.resume_download(NAME)
    assert controller.cancel_download(NAME).message == f"Cancelled {NAME}."
    assert maintenance_funcs(controller) == [(DISCARD_FUNC, (NAME, "c" * 40))]


def test_cancel_a_fresh_queued_download_has_nothing_to_delete(controller: Controller) -> None:
    controller.download_model(NAME)
    controller.cancel_download(NAME)
    assert controller.jobs.maintenance.jobs == []


def test_remove_a_paused_download(controller: Controller, stop_commands: list[str]) -> None:
    put(controller, Status.PAUSED, bytes_done=40, bytes_total=100)
    outcome = controller.remove_model(NAME)
    record = controller.get_model(NAME)
    assert record["status"] == "removing" and not record["cancel_requested"]
    assert maintenance_funcs(controller) == [(REMOVE_FUNC, (NAME, None))]  # no download to wait for
    assert outcome.job_id == record["job_id"] and stop_commands == []


# ---- the page's actions ----------------------------------------------------------------------------------


def test_page_actions_pause_and_resume(controller: Controller) -> None:
    actions = Actions(controller, Access(None))
    controller.download_model(NAME)
    assert f"Paused {NAME}." in actions.pause(NAME, None)  # type: ignore[arg-type]
    assert "is already paused; resume it to go on." in actions.pause(NAME, None)  # type: ignore[arg-type]
    assert "Resumed" in actions.resume(NAME, None)  # type: ignore[arg-type]
    assert controller.get_model(NAME)["status"] == "queued"
    assert "Pick a model first" in actions.resume(" ", None)  # type: ignore[arg-type]


def test_removal_question_of_a_paused_download() -> None:
    record = ModelRecord(name=NAME, repo_id=NAME, status=Status.PAUSED, bytes_done=40_000_000).to_dict()
    assert "deletes the 40.0 MB its paused download kept" in removal_question(record)


# ---- the watchdog ----------------------------------------------------------------------------------------


@pytest.fixture
def persisted() -> list[int]:
    return []


@pytest.fixture
def watchdog(controller: Controller, settings: Settings, persisted: list[int]) -> Watchdog:
    return Watchdog(controller.store, controller.jobs, settings, persist=lambda: persisted.append(1))


def test_a_dead_download_asked_to_pause_becomes_paused(controller: Controller, watchdog: Watchdog,
                                                       persisted: list[int]) -> None:
    put(controller, Status.DOWNLOADING, age=60, pause_requested=True, bytes_done=40, bytes_total=100,
        retry=RetryState(attempt=2, in_s=4, cause="HTTP 503", since=time.time() - 70))
    assert watchdog.run_once() == 1
    record = controller.store.get(NAME)
    assert record.status is Status.PAUSED and record.job_id == GONE_JOB and record.attempt == 1
    assert not record.pause_requested and record.retry is None and record.bytes_done == 40
    assert len(controller.jobs.downloads) == 0 and controller.jobs.maintenance.jobs == []  # files kept
    assert persisted == [1]
    assert "watchdog: paused download of org/model" in controller.store.read_state().logs[-1].format()


def test_a_dead_download_asked_to_cancel_and_pause_is_cancelled(controller: Controller,
                                                                watchdog: Watchdog) -> None:
    put(controller, Status.DOWNLOADING, age=60, pause_requested=True, cancel_requested=True)
    assert watchdog.run_once() == 1
    assert controller.store.get(NAME).status is Status.CANCELLED
    assert maintenance_funcs(controller) == [(DISCARD_FUNC, (NAME, "c" * 40))]


def test_a_lost_queued_job_asked_to_pause_becomes_paused(controller: Controller, watchdog: Watchdog) -> None:
    put(controller, Status.QUEUED, age=60, pause_requested=True)
    assert watchdog.run_once() == 1
    assert controller.store.get(NAME).status is Status.PAUSED and len(controller.jobs.downloads) == 0


@pytest.mark.parametrize(("flag", "age", "sent"), [
    ("pause_requested", 1, False), ("pause_requested", 6, True), ("cancel_requested", 6, True), (None, 6, False),
])
def test_a_live_download_that_missed_its_stop_flag_gets_the_stop_command(
        controller: Controller, watchdog: Watchdog, stop_commands: list[str], flag: str | None, age: float,
        sent: bool) -> None:
    put(controller, Status.DOWNLOADING, age=age, **({flag: True} if flag else {}))
    controller.redis.set(controller.keys.heartbeat(GONE_JOB), "1", ex=30)  # its worker is alive
    assert watchdog.run_once() == 0
    assert stop_commands == ([GONE_JOB] if sent else [])
    assert controller.store.get(NAME).status is Status.DOWNLOADING
