"""A partial file (``blobs/<etag>.incomplete``) that hashes every byte written and publishes itself.

The name is the same for every attempt, process and host, so whatever an attempt wrote survives it and
the next one continues with a ``Range`` request. The bytes already there are hashed once when the file is
opened; after that the hash follows the writes, so a finished file is compared with the Hub's checksum
without being read again. :func:`huggingface_hub.file_download.http_get` writes into it as into any file
object (``write``, ``tell``, ``seek`` + ``truncate`` when a server ignores ``Range`` and sends the whole
file again).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from huggingface_hub.file_download import _chmod_and_move

HashAlgo = Literal["sha256", "git-sha1"]
_READ_BLOCK = 8 << 20
SYNC_EVERY = 32 << 20
"""Bytes written between two ``fdatasync`` calls: the disk writes back while the network still delivers, so the
fsync before publishing has little left to flush (one at the end of a 1 GiB download took 0.3 s here)."""


class TransferStopped(Exception):
    """Raised inside a transfer thread once its download was told to stop (cancel, pause, another error)."""


class PartialFile:
    """An open partial file; see the module docstring. Use :meth:`open`."""

    def __init__(self, path: Path, fd: int, *, algorithm: HashAlgo, size: int,
                 stop: threading.Event, throttle: Callable[[int], None] | None) -> None:
        self.path = path
        self._fd = fd
        self._algorithm = algorithm
        self._expected_size = size
        self._stop = stop
        self._throttle = throttle
        self._hash = _new_hash(algorithm, size)
        self.size = 0
        """Bytes in the file (and hashed); read by the progress loop in another thread."""
        self._unsynced = 0
        self.last_write = time.monotonic()
        self._position = 0

    @classmethod
    def open(cls, path: Path, *, algorithm: HashAlgo, size: int, stop: threading.Event,
             throttle: Callable[[int], None] | None = None) -> PartialFile:
        """Open (or create) ``path`` and hash the bytes an earlier attempt left in it.

        A partial longer than the file it should become cannot be right and is emptied.
        """
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        partial = cls(path, fd, algorithm=algorithm, size=size, stop=stop, throttle=throttle)
        try:
            if os.fstat(fd).st_size > size:
                os.ftruncate(fd, 0)
            partial._rehash(os.fstat(fd).st_size)
        except BaseException:
            os.close(fd)
            raise
        return partial

    # -- the file object http_get writes into

    def write(self, data: bytes | memoryview) -> int:
        if self._stop.is_set():
            raise TransferStopped(f"transfer into {self.path.name} stopped")
        if self._throttle is not None:
            self._throttle(len(data))
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, self._position)  # short writes happen on a nearly full disk
            self._hash.update(view[:written])
            self._position += written
            self.size = max(self.size, self._position)
            view = view[written:]
        self.last_write = time.monotonic()
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY:
            os.fdatasync(self._fd)
            self._unsynced = 0
        return len(data)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or offset > self.size:
            raise OSError("a partial file only seeks back within what it holds")
        self._position = offset
        return offset

    def truncate(self, size: int | None = None) -> int:
        keep = self._position if size is None else size
        os.ftruncate(self._fd, keep)
        self._rehash(keep)
        return keep

    def flush(self) -> None:
        return None

    # -- ending

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def restart(self) -> None:
        """Throw the bytes away and start the file from its first byte."""
        self.truncate(0)

    def publish(self, blob: Path) -> None:
        """fsync, close and atomically move to ``blob`` (permissions as huggingface_hub sets them)."""
        os.fsync(self._fd)
        self.close()
        _chmod_and_move(self.path, blob)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _rehash(self, length: int) -> None:
        self._hash = _new_hash(self._algorithm, self._expected_size)
        done = 0
        while done < length:
            block = os.pread(self._fd, min(_READ_BLOCK, length - done), done)
            if not block:
                break
            self._hash.update(block)
            done += len(block)
        self._position = self.size = done


def _new_hash(algorithm: HashAlgo, size: int) -> hashlib._Hash:
    if algorithm == "sha256":
        return hashlib.sha256()
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % size)  # git's blob id: sha1 over a header with the size, then the content
    return digest
