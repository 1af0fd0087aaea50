"""The failover storm: a Sentinel-managed primary, one replica and three sentinels (``down-after-milliseconds``
1000); 2 UI workers behind HAProxy and 2 download workers on the ``redis+sentinel://`` URL; 16 clients downloading,
removing and cancelling 12 repos while the primary is SIGKILLed twice, at different moments (a supervisor starts
each dead node again once Sentinel has promoted the other). Then: writes resumed within 10 s of each kill, the page
served every read during the switches, every download ended with a reason, nothing a client saw finished was lost,
and page = Redis = snapshot = disk."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.controller import Controller
from app.core.settings import Settings, get_settings, reset_settings
from tests.hubserver import HubServer
from tests.redis_server import RedisServer
from tests.support.sentinel import SentinelCluster
from tests.support.storms import click_loop, disk_and_snapshot_equal_redis, replicas_equal_redis, settle, ui_stack
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow

REPOS = [f"ha/m{i:02d}" for i in range(12)]
CLIENTS = 16
STORM_SECONDS = float(os.environ.get("MODELDEPOT_STORM_SECONDS", "24"))
KILLS_AT = (0.25, 0.6)  # of the storm: two different moments
FINAL = {"ready", "failed", "cancelled"}

_REPO = r"ha/m\d\d"
REFUSALS = [  # a conflict with what another client did first; never "Redis is unreachable"
    rf"{_REPO} is being removed; wait until it is gone, then download again\.",
    rf"{_REPO} is not in the list; check the name with `modeldepot ls`\.",
    rf"{_REPO} is (ready|failed|cancelled|removing|paused), not downloading; nothing to cancel\.",
]


@dataclass
class Storm:
    """What the clients and the page reader saw."""

    clicks: list[tuple[float, float, str, int | str]] = field(default_factory=list)
    """(sent, answered, action, status) of every click."""
    odd: Counter[str] = field(default_factory=Counter)
    reads: list[tuple[float, float, bool]] = field(default_factory=list)
    """(sent, answered, ok) of every page read."""
    seen_final: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The newest finished record a page read showed for each model."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _clicks(url: str, seed: int, deadline: float, storm: Storm) -> None:
    def record(action: str, status: int | str, error: str | None, sent_at: float) -> None:
        with storm.lock:
            storm.clicks.append((sent_at, time.monotonic(), action, status))
            if status != 200 and not (error and any(re.fullmatch(p, error) for p in REFUSALS)):
                storm.odd[f"{action}: {status} {error}"] += 1

    click_loop(url, seed, deadline, repos=REPOS, actions={"download_model": 5, "remove_model": 2,
                                                          "cancel_download": 2}, pause=(0.05, 0.3), record=record)


def _read_page(url: str, deadline: float, storm: Storm) -> None:
    """A user looking at the list through the balancer, five times a second."""
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                response = client.post(f"{url}/gradio_api/run/fetch_models", json={"data": []})
                models = response.json()["data"][0] if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, KeyError):
                models = None
            with storm.lock:
                storm.reads.append((sent, time.monotonic(), models is not None))
                for record in models or ():
                    seen = storm.seen_final.get(record["name"])
                    if record["status"] in FINAL and (seen is None or seen["updated_at"] < record["updated_at"]):
                        storm.seen_final[record["name"]] = record
            time.sleep(0.2)


def _fail_over(cluster: SentinelCluster, at: float, kills: list[float]) -> None:
    """SIGKILL the primary at monotonic ``at``; once Sentinel promoted the replica, start the dead node again."""
    time.sleep(max(0.0, at - time.monotonic()))
    old: RedisServer = cluster.kill_primary()
    kills.append(time.monotonic())
    cluster.wait_for_promotion(old)
    cluster.restart(old)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    with SentinelCluster(tmp_path / "redis").start() as started:
        yield started


@pytest.fixture
def ha_settings(settings_env: Settings, cluster: SentinelCluster, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MODELDEPOT_REDIS_URL", cluster.url)
    reset_settings()
    return get_settings()


@pytest.mark.timeout(STORM_SECONDS + 300)
def test_two_primary_kills_mid_storm_lose_nothing(ha_settings: Settings, cluster: SentinelCluster, hub: HubServer,
                                                  worker_env: dict[str, str], tmp_path: Path) -> None:
    for i, repo in enumerate(REPOS):
        hub.add_repo(repo, {"config.json": b'{"i": %d}' % i, "model.bin": 200_000 + 20_000 * i})
    hub.throttle_bps = 1_000_000
    env = {**worker_env, "MODELDEPOT_REDIS_URL": cluster.url}
    workers = [WorkerProcess(env, tmp_path) for _ in range(2)]
    try:
        with ui_stack(env, tmp_path, 2) as (uis, balancer):
            storm, kills = Storm(), []
            start = time.monotonic()
            deadline = start + STORM_SECONDS
            threads = [threading.Thread(target=_clicks, args=(balancer.url, i, deadline, storm))
                       for i in range(CLIENTS)]
            threads.append(threading.Thread(target=_read_page, args=(balancer.url, deadline, storm)))
            for t in threads:
                t.start()
            for fraction in KILLS_AT:
                _fail_over(cluster, start + fraction * STORM_SECONDS, kills)
            for t in threads:
                t.join(timeout=STORM_SECONDS + 120)

            assert len(kills) == 2
            assert not storm.odd, f"answers that are neither a success nor a refusal of the action: {storm.odd}"
            for killed in kills:  # a write sent after the kill was answered 200 within 10 s of it
                resumed = min((answered for sent, answered, _, status in storm.clicks
                               if sent > killed and status == 200), default=float("inf"))
                assert resumed - killed < 10, (killed - start, resumed - killed)
            failed_reads = [(sent - start, answered - sent) for sent, answered, ok in storm.reads if not ok]
            assert not failed_reads, f"page reads that failed during the storm: {failed_reads}"
            assert max(answered - sent for sent, answered, _ in storm.reads) < 5  # reads never waited on Redis

            truth = Controller(ha_settings, listen=False)
            try:
                settle(truth, timeout=120)
            except AssertionError as e:
                stacks = "\n".join(f"--- {w.log_path.name}:\n{w.stacks()}" for w in workers)
                raise AssertionError(f"{e}\nthe workers' stacks:\n{stacks}") from None
            models = {m["name"]: m for m in truth.fetch_models()}
            assert all(m["status"] in FINAL for m in models.values())
            assert all(m["error"] for m in models.values() if m["status"] == "failed"), models
            logs = truth.get_logs()
            died = [line for line in logs if "died" in line]
            assert not died, f"the watchdog took a switch for dead downloads: {died}"  # no worker died here
            for name, seen in storm.seen_final.items():  # nothing a client saw finished went back in time
                now = models.get(name)
                if now is None:
                    assert any(f"removed {name}," in line for line in logs), (name, seen["status"])
                else:
                    assert now["updated_at"] >= seen["updated_at"], (name, seen["status"], now["status"])
            replicas_equal_redis(uis, truth)
            disk_and_snapshot_equal_redis(truth, ha_settings)
            print(f"failover storm: kills at {[round(k - start, 1) for k in kills]} s, "
                  f"{len(storm.clicks)} clicks {Counter(str(c[3]) for c in storm.clicks)}, "
                  f"{len(storm.reads)} page reads, final {Counter(m['status'] for m in models.values())}, "
                  f"restores {sum('Redis lost changes' in line for line in logs)}")
    finally:
        for worker in workers:
            worker.kill_all()
