"""The models volume as the page, ``modeldepot status`` and the room checks read it: its usage, the bytes in the
model folders and in partial files, and whether the file system records access times.

Only reads, and only names and ``stat`` (no file contents): blobs are ``<repo folder>/blobs/<etag>`` in the HF
cache layout, partial files ``<repo folder>/blobs/*.incomplete``, written by the workers' transfer engine.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

PARTIAL_GLOB = "*/blobs/*.incomplete"
BLOB_GLOB = "*/blobs/*"

_ST_NOATIME = getattr(os, "ST_NOATIME", 1024)
_ST_RELATIME = getattr(os, "ST_RELATIME", 4096)


@dataclass(frozen=True)
class Usage:
    """The models volume now: the file system's totals and what the model folders hold."""

    total: int
    used: int
    free: int
    models_bytes: int
    """Bytes of every blob in the model folders (each counted once, partial files included)."""
    partial_bytes: int

    def percent_used(self, extra: int = 0) -> float:
        """Percent of the volume used, with ``extra`` bytes more (negative: fewer)."""
        return 100.0 * (self.used + extra) / self.total if self.total else 0.0


def usage(models_dir: Path) -> Usage:
    """Read the volume of ``models_dir`` (one ``statvfs`` and one ``stat`` per blob).

    Raises:
        OSError: ``models_dir`` is not there.
    """
    disk = shutil.disk_usage(models_dir)
    blobs = partial = 0
    for path in models_dir.glob(BLOB_GLOB):
        size = _size(path)
        blobs += size
        if path.name.endswith(".incomplete"):
            partial += size
    return Usage(total=disk.total, used=disk.used, free=disk.free, models_bytes=blobs, partial_bytes=partial)


def partial_bytes(models_dir: Path) -> int:
    """Bytes in every partial file on the volume (downloads paused, failed or under way)."""
    return sum(_size(path) for path in models_dir.glob(PARTIAL_GLOB))


def atime_mode(models_dir: Path) -> str:
    """How the volume records access times, which last use is read from: ``noatime`` (never: last use falls
    back to the download time), ``relatime`` (the Linux default: at most about once a day per file) or
    ``strictatime`` (every read)."""
    try:
        flags = os.statvfs(models_dir).f_flag
    except OSError:
        return "unknown"
    if flags & _ST_NOATIME:
        return "noatime"
    return "relatime" if flags & _ST_RELATIME else "strictatime"


def _size(path: Path) -> int:
    try:
        return 0 if path.is_symlink() else os.stat(path).st_size
    except OSError:  # published or deleted meanwhile
        return 0
