"""The repos the download tests put on their module's local Hub."""

from __future__ import annotations

import uuid
from typing import Any

from tests.hubserver import HubServer

MODEL_SIZE = 300_000
CONFIG = b'{"model_type": "test"}'
FILES: dict[str, bytes | int] = {"config.json": CONFIG, "model.safetensors": MODEL_SIZE}


def new_repo(server: HubServer, files: dict[str, bytes | int] | None = None, **kwargs: Any) -> tuple[str, str]:
    """A repo of a name no other test uses (the module's Hub is shared), and its commit."""
    repo_id = f"org/m-{uuid.uuid4().hex[:8]}"
    return repo_id, server.add_repo(repo_id, files or FILES, **kwargs)
