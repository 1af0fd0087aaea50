"""Moving the state between deployments: `modeldepot snapshot export` / `snapshot import`.

The file is the same JSON document as ``controller_state.json`` (:mod:`app.core.snapshot`). An import into an
empty Redis is one atomic seed; into a Redis that already has models it needs ``force`` and then writes
each record through the store, so every open page sees the imported models at once.

Imports use a bare :class:`~app.core.store.Store`, not a ``Controller``: a controller's start seeds an empty
Redis from ``controller_state.json``, which would turn an import into a fresh Redis into an overwrite.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from app.core import snapshot
from app.core.errors import ConflictError, SnapshotImportError, StateFileError
from app.core.files import atomic_write_text
from app.core.records import ModelRecord
from app.core.store import LogEntry, State, Store

IMPORTER = "snapshot-import"
STDIO = "-"


@dataclass(frozen=True)
class ImportResult:
    models: int
    replaced: int
    seeded: bool


def export_text(store: Store) -> tuple[str, State]:
    """The current state as a snapshot document (pretty JSON)."""
    state = store.read_state()
    return json.dumps(snapshot.build_document(state), indent=2, sort_keys=True) + "\n", state


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``-`` is stdout).

    Raises:
        StateFileError: the file cannot be written.
    """
    if path == STDIO:
        sys.stdout.write(text)
        return
    try:
        atomic_write_text(Path(path), text)
    except OSError as e:
        raise StateFileError(f"Cannot write {path}: {e.strerror}. Choose a writable path.") from e


def read_document(path: str) -> State:
    """Read and validate a snapshot file (``-`` is stdin).

    Raises:
        SnapshotImportError: the file cannot be read or is not a valid snapshot; nothing was changed.
    """
    try:
        text = sys.stdin.read() if path == STDIO else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise SnapshotImportError(f"Cannot read {path}: {reason}. Nothing was imported.") from e
    try:
        return snapshot.parse_document(text)
    except SnapshotImportError as e:
        raise SnapshotImportError(
            f"{path} is not a valid Model Depot snapshot: {e}. Nothing was imported; "
            "export one with `modeldepot snapshot export FILE`."
        ) from e


def import_state(store: Store, state: State, *, source: str, force: bool = False) -> ImportResult:
    """Load ``state`` into Redis: seed an empty Redis, or (with ``force``) overwrite same-named records.

    Raises:
        ConflictError: Redis already has models and ``force`` is False.
        StateUnavailableError: Redis is unreachable.
    """
    entry = LogEntry(IMPORTER, f"imported {len(state.models)} models from {Path(source).name}", level="warning")
    if store.seed(state.version, state.models, [*state.logs, entry]):
        return ImportResult(len(state.models), 0, seeded=True)
    current = store.read_state().models
    if current and not force:
        raise ConflictError(
            f"Redis already holds {len(current)} models; nothing was imported. Export them "
            "first (`modeldepot snapshot export backup.json`), then import with --force to "
            "overwrite records of the same name."
        )
    for name, raw in state.models.items():
        store.force(name, ModelRecord.model_validate(raw), None)
    store.append_log(entry)
    return ImportResult(len(state.models), sum(1 for name in state.models if name in current), seeded=False)
