"""Seeding: an empty Redis gets its state from ``controller_state.json``, or starts as an empty list; a Redis that
lost its newest writes (a failover to a replica that lacked them) gets back what the snapshot holds newer.

Every process that may be first to find Redis empty seeds it explicitly: ``modeldepot serve`` before it builds
the UI, each worker at start, and a Controller whose listener sees Redis come back empty. The seed is one Lua
script (:meth:`app.core.store.Store.seed`), so only the first process seeds and the others change nothing; the
restore is one too (:meth:`app.core.store.Store.restore`), run by a listener that sees Redis go back in versions
and by a worker's watchdog that sees another primary answer.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

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


def restore_from_snapshot(store: Store, state_file: Path) -> bool:
    """Seed an empty Redis, or, when Redis is behind the snapshot, put back every record the snapshot holds newer
    than Redis (missing, or changed later by ``updated_at``). True if this call changed Redis.

    Only the snapshot's finished states come back: a record Redis has changed since it lost them is left alone.

    Raises:
        StateFileCorruptError, StateFileError, StateUnavailableError: as :func:`seed_from_snapshot`.
    """
    if not store.is_initialized():
        return seed_from_snapshot(store, state_file)
    state = snapshot.load_file(state_file)
    version = store.read_version()
    if state is None or state.version <= version:
        return False
    lost = _newer_in_snapshot(state.models, store.read_raw_models())
    names = ", ".join(sorted(lost)) or "no record"
    entry = LogEntry(SYSTEM_USER, f"Redis lost changes (it is at version {version}, {state_file.name} at "
                                  f"{state.version}; a failover to a replica that lacked them?): restored {names} "
                                  f"from {state_file.name}", level="warning")
    restored = store.restore(state.version + 1, lost, entry)
    if restored:
        log.warning("%s", entry.what)
    return restored


def _newer_in_snapshot(saved: dict[str, dict[str, Any]],
                       current: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The snapshot's records Redis lacks or holds older, each with the raw record Redis holds ("" for none)."""
    lost = {}
    for name, record in saved.items():
        raw = current.get(name, "")
        held = json.loads(raw) if raw else None
        if held is None or float(held.get("updated_at", 0)) < float(record.get("updated_at", 0)):
            lost[name] = (raw, record)
    return lost


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
