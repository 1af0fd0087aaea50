"""Seeding: an empty Redis gets its state from ``controller_state.json``, or starts as an empty list.

Every process that may be first to find Redis empty seeds it explicitly: ``modeldepot serve`` before it builds
the UI, each worker at start, and a Controller whose listener sees Redis come back empty. The seed is one Lua
script (:meth:`app.core.store.Store.seed`), so only the first process seeds and the others change nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from app.core import snapshot
from app.core.connection import connect
from app.core.settings import Settings
from app.core.store import SYSTEM_USER, LogEntry, Store

log = logging.getLogger(__name__)


def seed_from_snapshot(store: Store, state_file: Path) -> bool:
    """Seed an empty Redis from ``state_file`` (an empty list when there is none); False if Redis holds state.

    The file is read only when Redis is empty, so a corrupt file stops only a start that would use it.

    Raises:
        StateFileCorruptError: the file is not a valid snapshot; it was moved to ``*.corrupt-<timestamp>``.
        StateFileError: the file cannot be read.
        StateUnavailableError: Redis is unreachable.
    """
    if store.is_initialized():
        return False
    state = snapshot.load_file(state_file)
    if state is None:
        seeded = store.seed(0, {}, [])
        if seeded:
            log.info("starting with an empty model list")
        return seeded
    entry = LogEntry(SYSTEM_USER, f"Redis was empty: state rebuilt from {state_file.name} "
                                  f"(version {state.version}, {len(state.models)} models)", level="warning")
    seeded = store.seed(state.version, state.models, [*state.logs, entry])
    if seeded:
        log.warning("%s", entry.what)
    return seeded


def seed_configured(settings: Settings) -> bool:
    """:func:`seed_from_snapshot` for a process starting up, on a connection of its own.

    Raises:
        ConfigError: no Redis URL is configured.
        StateFileCorruptError, StateFileError, StateUnavailableError: as :func:`seed_from_snapshot`.
    """
    connection = connect(settings)
    try:
        store = Store.for_settings(connection, settings, sender=f"seed:{socket.gethostname()}:{os.getpid()}")
        return seed_from_snapshot(store, settings.resolved_state_file)
    finally:
        connection.close()
