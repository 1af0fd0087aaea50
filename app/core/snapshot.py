"""The JSON snapshot (``controller_state.json``): build, save atomically, load, validate.

Saves are serialized across processes with a file lock, written to a temp file, fsynced and moved into
place with ``os.replace``, so a reader (or a crash) never sees half a file; an older snapshot never
replaces a newer one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import ValidationError

from app.core.errors import SnapshotImportError, StateFileCorruptError, StateFileError
from app.core.files import atomic_write_text
from app.core.records import ModelRecord
from app.core.store import LogEntry, State, Store

log = logging.getLogger(__name__)

FORMAT = 1


def build_document(state: State) -> dict[str, Any]:
    """The snapshot of a state, as the JSON document stored on disk and in Redis."""
    return {
        "format": FORMAT,
        "version": state.version,
        "saved_at": time.time(),
        "models": state.models,
        "logs": [json.loads(entry.to_json()) for entry in state.logs],
    }


def persist(store: Store, path: Path) -> bool:
    """Write the current Redis state to ``path`` and to the Redis snapshot key.

    Returns False when a newer snapshot was already in place.

    Raises:
        StateUnavailableError: Redis cannot be reached.
        StateFileError: the file cannot be written.
    """
    state = store.read_state()
    document = build_document(state)
    text = json.dumps(document, sort_keys=True)
    written = write_file(path, text, state.version)
    store.save_snapshot(text, state.version)
    return written


def write_file(path: Path, text: str, version: int) -> bool:
    """Atomically replace ``path`` with ``text`` unless the file holds a newer version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=30):
            if _file_version(path) >= version:
                return False
            atomic_write_text(path, text)
            return True
    except Timeout as e:
        raise StateFileError(f"Timed out waiting for the lock on {path}.lock; is a process stuck?") from e
    except OSError as e:
        raise StateFileError(f"Cannot write the snapshot {path}: {e.strerror}. Check the volume.") from e


def _file_version(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def load_file(path: Path) -> State | None:
    """Read the snapshot at ``path``; None if there is none.

    Raises:
        StateFileCorruptError: the file is not a valid snapshot; it was moved to ``*.corrupt-<ts>``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateFileError(f"Cannot read {path}: {e.strerror}. Fix its permissions and start again.") from e
    try:
        return parse_document(text)
    except SnapshotImportError as e:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        raise StateFileCorruptError(
            f"{path} is not a valid Model Depot snapshot ({e}). It was moved to {aside}. Start again to "
            f"begin with an empty list (models on disk are adopted), or put a good backup at {path}."
        ) from e


def parse_document(text: str) -> State:
    """Validate a snapshot document.

    Raises:
        SnapshotImportError: the text is not a valid snapshot, with the reason.
    """
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise SnapshotImportError(f"not JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotImportError(f"not a snapshot document (expected an object with format {FORMAT})")
    version, models, logs = doc.get("version"), doc.get("models"), doc.get("logs", [])
    if not isinstance(version, int) or version < 0:
        raise SnapshotImportError("'version' must be a non-negative integer")
    if not isinstance(models, dict) or not isinstance(logs, list):
        raise SnapshotImportError("'models' must be an object and 'logs' a list")
    return State(version, _parse_models(models), [LogEntry.from_obj(e) for e in logs if isinstance(e, dict)])


def _parse_models(models: dict[str, Any]) -> dict[str, dict[str, Any]]:
    parsed = {}
    for name, raw in models.items():
        try:
            record = ModelRecord.model_validate(raw)
        except ValidationError as e:
            raise SnapshotImportError(f"model {name[:80]!r} is malformed: {e.errors()[0]['msg']}") from e
        if record.name != name:
            raise SnapshotImportError(f"model key {name[:80]!r} does not match its name {record.name[:80]!r}")
        parsed[name] = record.to_dict()
    return parsed
