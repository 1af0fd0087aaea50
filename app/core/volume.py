"""The models volume as the page and ``modeldepot status`` read it: its usage and the bytes held in partial files.

Only reads, and only names (no file contents): partial files are ``<repo folder>/blobs/*.incomplete`` in the HF
cache layout, written by the workers' transfer engine and kept between attempts.
"""

from __future__ import annotations

import os
from pathlib import Path

PARTIAL_GLOB = "*/blobs/*.incomplete"


def partial_bytes(models_dir: Path) -> int:
    """Bytes in every partial file on the volume (downloads paused, failed or under way)."""
    total = 0
    for path in models_dir.glob(PARTIAL_GLOB):
        try:
            total += os.stat(path).st_size
        except OSError:  # published or deleted meanwhile
            continue
    return total
