"""workers/download/hub.py verify: the files on the volume against the Hub's checksums."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import scan_cache_dir

from app.core.errors import IntegrityError
from tests.download.repos import MODEL_SIZE, new_repo
from tests.hubserver import HubServer
from workers.download import hub


def test_verify_passes_then_catches_and_deletes_a_corrupted_file(hf: HubServer, models: Path,
                                                                  fetch: Callable[..., Any]) -> None:
    repo_id, sha = new_repo(hf)
    plan, snapshot = fetch(repo_id, models)
    hub.verify(repo_id, sha, cache_dir=models)
    link = snapshot / "model.safetensors"
    blob = link.resolve()
    with blob.open("r+b") as f:  # bit rot on the volume after the download
        f.seek(1000)
        f.write(b"\x00\xff")

    with pytest.raises(IntegrityError, match=r"'model\.safetensors'"):
        hub.verify(repo_id, sha, cache_dir=models)

    assert not os.path.lexists(link) and not blob.exists()
    info = scan_cache_dir(models)
    assert not info.warnings and [r.nb_files for r in info.repos] == [1]
    retry = hub.plan_download(repo_id, cache_dir=models)
    assert retry.bytes_needed == MODEL_SIZE
    fetch(repo_id, models)
    hub.verify(repo_id, sha, cache_dir=models, files=[f.path for f in plan.files])
    assert hf.get_counts[(repo_id, "config.json")] == 1


def test_verify_reports_missing_files(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, sha = new_repo(hf)
    fetch(repo_id, models, allow_patterns=["*.json"])
    hub.verify(repo_id, sha, cache_dir=models)

    with pytest.raises(IntegrityError, match=r"missing: 'model\.safetensors'"):
        hub.verify(repo_id, sha, cache_dir=models, files=["config.json", "model.safetensors"])
    with pytest.raises(IntegrityError, match="not on the models volume"):
        hub.verify(repo_id, "f" * 40, cache_dir=models)


def test_verify_leaves_last_use_as_it_was(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    import time

    from workers.download import cache

    repo_id, sha = new_repo(hf)
    _, snapshot = fetch(repo_id, models)
    long_ago = time.time() - 40 * 86400
    for link in snapshot.iterdir():
        os.utime(link.resolve(), (long_ago, long_ago))
    hub.verify(repo_id, sha, cache_dir=models)  # reads every byte of every file
    assert cache.last_access(repo_id, sha, models) == pytest.approx(long_ago, abs=1)
