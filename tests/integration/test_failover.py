"""Through a failover, on real servers: a Sentinel-managed primary SIGKILLed under a controller; a plain redis:// URL
whose server turns read-only, then is replaced by the promoted replica on the same port, mid-download; and writes a
failover lost coming back from controller_state.json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core import status
from app.core.connection import connect_async
from app.core.controller import Controller
from app.core.keys import Keys
from app.core.seeding import seed_configured
from app.core.settings import Settings, get_settings, reset_settings
from tests.hubserver import HubServer
from tests.redis_server import RedisServer
from tests.support.sentinel import SentinelCluster
from tests.support.waiting import wait_snapshot, wait_status, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow


def _use(url: str, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Settings:
    """This process's settings (and its children's environment) on ``url``."""
    monkeypatch.setenv("MODELDEPOT_REDIS_URL", url)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    settings = get_settings()
    seed_configured(settings)
    return settings


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    with SentinelCluster(tmp_path / "redis").start() as started:
        yield started


def _equal_to_redis(controller: Controller) -> bool:
    state = controller.store.read_state()
    return controller.in_sync and controller.version == state.version and controller.models == state.models


def test_a_controller_writes_through_a_sentinel_failover_and_its_replica_follows(
        settings_env: Settings, cluster: SentinelCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _use(cluster.url, monkeypatch)
    keys = Keys(settings.key_prefix)
    with Controller(settings) as controller:
        wait_until(lambda: controller.in_sync, 10, "the listener to subscribe")
        controller.download_model("org/before")
        replica_node = cluster.replicas()[0]
        # WAIT 1: once the call returns, the replica holds the record, with no waiting on our side
        assert replica_node.client().hexists(keys.models, "org/before")

        old = cluster.kill_primary()
        killed_at = time.monotonic()
        supervisor = threading.Thread(target=_bring_back, args=(cluster, old))
        supervisor.start()
        seen_in_sync: list[bool] = []
        watcher = threading.Thread(target=_sample, args=(lambda: controller.in_sync, seen_in_sync, 6.0))
        watcher.start()
        controller.download_model("org/during")  # sent while no primary answers: it waits, then lands
        written_after = time.monotonic() - killed_at
        supervisor.join()
        watcher.join()

        assert written_after < 10, written_after
        records = cluster.client().hgetall(keys.models)
        assert {b"org/before", b"org/during"} <= set(records), records  # nothing acknowledged was lost
        assert False in seen_in_sync  # the page showed its stale banner while there was no primary
        wait_until(lambda: _equal_to_redis(controller), 15, "the replica to resubscribe and equal the new primary")

        cluster.wait_in_sync()

        def replication() -> status.ReplicationInfo | None:
            return status.health_report(settings, controller.brief_redis,
                                        lambda: contextlib.nullcontext(controller)).replication

        def names_the_cluster() -> status.ReplicationInfo | None:
            # Sentinel may fail a healthy new primary over again (down-after is 1 s here): compare with what it says now
            primary = cluster.primary()
            report = replication()
            replicas = [f"127.0.0.1:{n.port}" for n in cluster.nodes if n is not primary]
            if report and report.primary == f"127.0.0.1:{primary.port}" and [
                    r.address for r in report.online] == replicas:
                return report
            return None

        named = wait_until(names_the_cluster, 10, "the report to name the primary and its online replica")
        assert named.via == "sentinel service 'depot'", named


def test_the_cli_and_the_event_stream_go_through_the_sentinels(
        settings_env: Settings, cluster: SentinelCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _use(cluster.url, monkeypatch)
    report = subprocess.run([sys.executable, "-m", "app.cli", "status", "--json"], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ))
    replication = json.loads(report.stdout)["replication"]
    assert replication["primary"] == f"127.0.0.1:{cluster.primary().port}", report.stdout
    assert [r["state"] for r in replication["replicas"]] == ["online"], replication

    async def read_stream() -> list[Any]:
        client = connect_async(settings, socket_connect_timeout=5)
        try:
            await client.xadd("t:stream", {"event": "x"})
            return list(await client.xrange("t:stream"))
        finally:
            await client.aclose()

    assert len(asyncio.run(read_stream())) == 1
    assert cluster.client().xlen("t:stream") == 1  # it wrote to the primary the sentinels name


def _bring_back(cluster: SentinelCluster, old: RedisServer) -> None:
    """What a supervisor does: once another node is promoted, start the dead one again (as its replica)."""
    cluster.wait_for_promotion(old)
    cluster.restart(old)


def _sample(read: Callable[[], bool], into: list[bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        into.append(read())
        time.sleep(0.05)


class Pair:
    """A primary and its replica on two ports, and the server that may take the primary's port later."""

    def __init__(self, directory: Path) -> None:
        self.primary = RedisServer(directory / "a").start()
        self.replica = RedisServer(directory / "b", replicaof=("127.0.0.1", self.primary.port)).start()
        self.servers = [self.primary, self.replica]
        wait_until(lambda: self.replica.client().info("replication")["master_link_status"] == "up", 10,
                   "the replica to sync")

    def replace_primary(self, *, read_only_s: float) -> RedisServer:
        """What a managed endpoint does in a failover, on one address: the replica is promoted, the old primary
        turns read-only for ``read_only_s`` (clients get READONLY), then dies, and the promoted replica's data
        serves on the old primary's port."""
        self.replica.client().replicaof("NO", "ONE")
        self.primary.client().replicaof("127.0.0.1", str(self.replica.port))
        time.sleep(read_only_s)
        self.primary.kill()
        self.replica.stop()  # SIGTERM: the append-only file is complete
        replaced = RedisServer(self.replica.directory, port=self.primary.port)
        self.servers.append(replaced)
        return replaced.start()

    def stop(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    servers = Pair(tmp_path)
    yield servers
    servers.stop()


def test_a_plain_url_follows_a_promoted_replica_on_the_same_port_mid_download(
        settings_env: Settings, pair: Pair, hub: HubServer, worker_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    primary = pair.primary
    settings = _use(primary.url, monkeypatch)
    hub.add_repo("org/big", {"config.json": b"{}", "model.bin": 3_000_000})
    hub.throttle_bps = 1_000_000
    worker = WorkerProcess({**worker_env, "MODELDEPOT_REDIS_URL": primary.url}, tmp_path)
    try:
        worker.wait_alive(primary.client())
        with Controller(settings) as controller:
            controller.download_model("org/big")
            wait_until(lambda: hub.bytes_served.get(("org/big", "model.bin"), 0) > 800_000, 30, "a third of the file")
            replaced = pair.replace_primary(read_only_s=1.0)
            record = wait_status(controller, "org/big", {"ready", "failed", "cancelled"}, timeout=60)
            assert record["status"] == "ready", record
            assert hub.bytes_served[("org/big", "model.bin")] == 3_000_000  # the worker kept its bytes through it
            assert not [line for line in controller.get_logs() if "fail" in line or "died" in line], \
                controller.get_logs()
            wait_until(lambda: _equal_to_redis(controller), 15, "the replica to equal the replaced server")
            assert replaced.client().hget(Keys(settings.key_prefix).models, "org/big")
    finally:
        worker.kill_all()


def test_writes_a_failover_lost_come_back_from_the_snapshot(
        settings_env: Settings, pair: Pair, hub: HubServer, worker_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    primary, replica = pair.primary, pair.replica
    settings = _use(primary.url, monkeypatch, MODELDEPOT_REDIS_WAIT_MS="100")
    hub.add_repo("org/kept", {"config.json": b"{}", "model.bin": 50_000})
    hub.add_repo("org/lost", {"config.json": b"{}", "model.bin": 60_000})
    worker = WorkerProcess({**worker_env, "MODELDEPOT_REDIS_URL": primary.url, "MODELDEPOT_REDIS_WAIT_MS": "100"},
                           tmp_path)
    try:
        worker.wait_alive(primary.client())
        with Controller(settings) as controller:
            controller.download_model("org/kept")
            wait_status(controller, "org/kept", {"ready"})
            replica.client().replicaof("NO", "ONE")  # the replica stops following: what comes next never reaches it
            controller.download_model("org/lost")
            wait_status(controller, "org/lost", {"ready"})
            wait_snapshot(settings.resolved_state_file,
                          lambda doc: doc["models"].get("org/lost", {}).get("status") == "ready")

            assert replica.client().hget(Keys(settings.key_prefix).models, "org/lost") is None
            replaced = pair.replace_primary(read_only_s=0)
            lines = wait_until(lambda: [line for line in controller.get_logs() if "Redis lost changes" in line], 20,
                               "the listener or the worker's watchdog to notice and restore")
            assert "restored org/lost from controller_state.json" in lines[0], lines
            assert controller.models["org/lost"]["status"] == "ready"
            stored = replaced.client().hget(Keys(settings.key_prefix).models, "org/lost")
            assert stored is not None and b'"status":"ready"' in stored
            wait_until(lambda: _equal_to_redis(controller), 15, "the replica to equal the restored Redis")
            # Redis moved past the snapshot's version, so the next significant change is saved again
            controller.remove_model("org/kept")
            wait_snapshot(settings.resolved_state_file, lambda doc: "org/kept" not in doc["models"])
    finally:
        worker.kill_all()
