"""The progress reporter: what the page's progress line is made of."""

from __future__ import annotations

import time
from dataclasses import dataclass

import fakeredis

from app.core.keys import Keys
from app.core.records import ModelRecord, RetryState, Status
from app.core.store import Store
from workers.progress import ProgressReporter


@dataclass
class Tick:
    bytes_done: int
    bytes_total: int = 10_000_000
    files_done: int = 0
    files_total: int = 2
    retry: RetryState | None = None


def _downloading(store: Store) -> None:
    record = ModelRecord(name="org/m", repo_id="org/m", status=Status.DOWNLOADING, job_id="job", attempt=1)
    store.force("org/m", record, None)


def test_every_written_tick_of_a_moving_download_has_a_speed_and_an_eta() -> None:
    store = Store(fakeredis.FakeRedis(), Keys("t"), sender="test")
    _downloading(store)
    reporter = ProgressReporter(store, "org/m", "job", interval=0.05)
    done = 0
    for _ in range(12):
        done += 100_000  # bytes keep arriving between ticks
        reporter(Tick(done))
        record = store.get("org/m")
        assert record is not None
        if record.bytes_done:  # the first write comes one interval in, with two samples at least
            assert record.speed_bps > 0 and record.eta_s is not None, record
        time.sleep(0.02)
    assert reporter.writes >= 2


def test_a_first_tick_that_comes_late_waits_for_a_second_sample() -> None:
    """A transfer that starts more than an interval after the reporter was made (a slow plan, a busy machine) used
    to write its first tick with one sample: no speed, "— · ETA —" on the page."""
    store = Store(fakeredis.FakeRedis(), Keys("t"), sender="test")
    _downloading(store)
    reporter = ProgressReporter(store, "org/m", "job", interval=0.05)
    time.sleep(0.1)
    reporter(Tick(500_000))
    assert reporter.writes == 0
    time.sleep(0.02)
    reporter(Tick(600_000))
    record = store.get("org/m")
    assert record is not None and reporter.writes == 1
    assert record.speed_bps > 0 and record.eta_s is not None, record


def test_the_final_tick_is_written_at_once() -> None:
    store = Store(fakeredis.FakeRedis(), Keys("t"), sender="test")
    _downloading(store)
    reporter = ProgressReporter(store, "org/m", "job", interval=60)
    reporter(Tick(10_000_000, files_done=2))
    record = store.get("org/m")
    assert record is not None and record.bytes_done == 10_000_000 and reporter.writes == 1
