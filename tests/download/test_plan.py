"""workers/download/hub.py: what a download will fetch, whether it fits on the volume, and how long a silent Hub
may take, against a real local Hub."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory

from app.core.errors import HubNetworkError
from tests.download.repos import CONFIG, FILES, MODEL_SIZE, new_repo
from tests.hubserver import HubServer
from workers.download import hub


def test_plan_lists_commit_files_and_sizes(hf: HubServer, models: Path) -> None:
    repo_id, sha = new_repo(hf, {**FILES, "onnx/model.onnx": 20_000})

    plan = hub.plan_download(repo_id, cache_dir=models)

    assert plan.commit == sha
    assert [(f.path, f.size) for f in plan.files] == [
        ("config.json", len(CONFIG)),
        ("model.safetensors", MODEL_SIZE),
        ("onnx/model.onnx", 20_000),
    ]
    assert plan.files_total == 3
    assert plan.bytes_total == plan.bytes_needed == MODEL_SIZE + 20_000 + len(CONFIG)


def test_plan_counts_cached_files_as_not_needed(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, _ = new_repo(hf)
    fetch(repo_id, models, allow_patterns=["*.json"])

    plan = hub.plan_download(repo_id, cache_dir=models)

    assert plan.bytes_needed == MODEL_SIZE
    assert plan.files_needed == 1
    assert {f.path for f in plan.files if f.cached} == {"config.json"}


def test_plan_applies_patterns_and_revisions(hf: HubServer, models: Path) -> None:
    repo_id, first = new_repo(hf, tags=None)
    second = hf.add_repo(repo_id, {**FILES, "extra.bin": 1_000}, tags={"v2": "main"})

    assert [
        f.path for f in hub.plan_download(repo_id, allow_patterns=["*.json"], cache_dir=models).files
    ] == ["config.json"]
    ignored = hub.plan_download(repo_id, ignore_patterns=["*.bin", "*.json"], cache_dir=models)
    assert [f.path for f in ignored.files] == ["model.safetensors"]
    assert hub.plan_download(repo_id, revision=first, cache_dir=models).files_total == 2
    assert hub.plan_download(repo_id, revision="v2", cache_dir=models).commit == second


def test_stalled_api_call_gives_up_with_configured_timeout(
    hf: HubServer, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hub.configure_http_client(timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(HubNetworkError, match="Could not reach"):
                hub.plan_download(
                    "org/name", cache_dir=models, endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}"
                )
            assert time.monotonic() - started < 5
        finally:
            set_client_factory(default_client_factory)
