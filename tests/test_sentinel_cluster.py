"""The Sentinel fixture against real processes: it forms, replicates, fails over and back, and stops clean."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
import redis
from redis.sentinel import Sentinel

from tests.redis_server import RedisServer
from tests.support.sentinel import SentinelCluster, refuses_writes
from tests.support.waiting import wait_until

PASSWORD = "data-Pa55"
SENTINEL_PASSWORD = "sentinel-Pa55"


def _role(node: RedisServer) -> list[object]:
    with node.client() as c:
        return c.execute_command("ROLE")


def _sentinel_client(cluster: SentinelCluster) -> Sentinel:
    return Sentinel([("127.0.0.1", s.port) for s in cluster.sentinels], password=cluster.password,
                    sentinel_kwargs={"password": cluster.sentinel_password, "socket_timeout": 1}, socket_timeout=1)


def _promote(cluster: SentinelCluster) -> tuple[RedisServer, RedisServer, float]:
    """Kill the primary and wait for the promotion: the old node, the new one, and the seconds in between."""
    started = time.monotonic()
    old = cluster.kill_primary()
    new = cluster.wait_for_promotion(old)
    return old, new, time.monotonic() - started


def test_the_cluster_forms_replicates_and_stop_kills_every_process(tmp_path: Path) -> None:
    cluster = SentinelCluster(tmp_path).start()
    with cluster:
        primary, replica = cluster.nodes
        ports = ",".join(f"127.0.0.1:{s.port}" for s in cluster.sentinels)
        assert cluster.url == f"redis+sentinel://{ports}/depot/0"
        assert cluster.primary() is primary and cluster.replicas() == [replica]
        for sentinel in cluster.sentinels:
            with sentinel.client() as c:
                assert c.sentinel_master("depot")["num-other-sentinels"] == 2
                assert [r["port"] for r in c.sentinel_slaves("depot")] == [replica.port]

        with cluster.client() as c:
            c.set("greeting", "hello")
        cluster.wait_in_sync()
        with replica.client() as c:
            assert c.get("greeting") == b"hello"
            with pytest.raises(redis.ReadOnlyError):
                c.set("greeting", "from the replica")

        # min-replicas-to-write 1 (the default): a primary without a replica refuses writes, until one rejoins.
        replica.kill()
        with cluster.client() as c:
            wait_until(lambda: refuses_writes(c), 5, "the primary to refuse writes without a replica")
        cluster.restart(replica)
        with cluster.client() as c:
            assert c.set("greeting", "again")
        pids = cluster.pids()
        assert len(pids) == 5 and all(psutil.pid_exists(pid) for pid in pids)
    cluster.stop()
    assert not [pid for pid in pids if psutil.pid_exists(pid)]



def test_a_failover_and_back_with_the_sentinel_client_writing_throughout(tmp_path: Path) -> None:
    # min_replicas_to_write=0: a promoted lone replica has no replica of its own until the old node is back.
    with (SentinelCluster(tmp_path, password=PASSWORD, sentinel_password=SENTINEL_PASSWORD,
                          min_replicas_to_write=0).start() as cluster,
          _sentinel_client(cluster) as sentinel, sentinel.master_for("depot") as depot):
        assert depot.set("before", "1")
        first, second = cluster.nodes

        old, new, seconds = _promote(cluster)
        assert (old, new) == (first, second)
        assert seconds < 10, f"the promotion took {seconds:.1f}s"
        assert depot.set("after", "2") and depot.get("before") == b"1"

        cluster.restart(old)
        assert _role(old)[:3] == [b"slave", b"127.0.0.1", second.port]
        cluster.wait_in_sync()
        with old.client() as c:
            assert c.get("after") == b"2"

        old, new, seconds = _promote(cluster)
        assert (old, new) == (second, first)
        assert seconds < 10, f"the second promotion took {seconds:.1f}s"
        assert depot.set("back", "3") and depot.get("after") == b"2"
        cluster.restart(old)
        cluster.wait_in_sync()
        with old.client() as c:
            assert c.get("back") == b"3"


def test_a_promoted_lone_replica_refuses_writes_until_the_old_primary_rejoins(tmp_path: Path) -> None:
    with SentinelCluster(tmp_path).start() as cluster:
        old, new, seconds = _promote(cluster)
        assert seconds < 10, f"the promotion took {seconds:.1f}s"
        with new.client() as c:
            assert refuses_writes(c)
            cluster.restart(old)
            assert c.set("written", "after the old primary rejoined")
