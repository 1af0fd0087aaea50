"""workers/download/cache.py: the models volume in the Hugging Face cache layout, read and pruned."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import scan_cache_dir, snapshot_download

from app.core.errors import InvalidInputError, InvalidModelNameError
from tests.download.repos import CONFIG, MODEL_SIZE, new_repo
from tests.hubserver import HubServer
from workers.download import cache, hub


def test_delete_revision_frees_what_scan_cache_dir_counts(hf: HubServer, models: Path,
                                                          fetch: Callable[..., Any]) -> None:
    repo_id, first = new_repo(hf)
    second = hf.add_repo(
        repo_id, {"config.json": b'{"v": 2}', "model.safetensors": MODEL_SIZE, "x.bin": 30_000}
    )
    fetch(repo_id, models, revision=first)
    fetch(repo_id, models)
    folder = cache.repo_dir(repo_id, models)
    before = scan_cache_dir(models).size_on_disk

    freed = cache.delete_revision(repo_id, first, cache_dir=models)

    assert freed == len(CONFIG)  # the model blob is shared
    assert before - scan_cache_dir(models).size_on_disk == freed
    assert [m.commit for m in cache.scan_models(models)] == [second]

    (folder / "blobs" / "leftover.1234abcd.incomplete").write_bytes(b"x" * 100)
    remaining = scan_cache_dir(models).size_on_disk
    assert cache.delete_revision(repo_id, None, cache_dir=models) == remaining + 100
    assert not folder.exists() and not (models / ".locks" / folder.name).exists()
    assert not scan_cache_dir(models).repos


def test_delete_revision_after_a_plan_only(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)
    hub.plan_download(repo_id, cache_dir=models)  # a dry run writes refs/main, no snapshot
    assert scan_cache_dir(models).warnings

    assert cache.delete_revision(repo_id, None, cache_dir=models) == 0
    assert not cache.repo_dir(repo_id, models).exists()
    assert cache.delete_revision("org/never-downloaded", None, cache_dir=models) == 0


def test_delete_revision_never_leaves_cache_dir(tmp_path: Path, models: Path) -> None:
    outside = tmp_path / "outside"
    commit = "a" * 40
    (outside / "snapshots" / commit).mkdir(parents=True)
    (outside / "blobs").mkdir()
    (outside / "blobs" / "etag").write_text("precious")
    (outside / "snapshots" / commit / "file").symlink_to(outside / "blobs" / "etag")
    (outside / "blobs" / "x.incomplete").write_text("precious")
    models.mkdir()
    (models / "models--org--evil").symlink_to(outside, target_is_directory=True)
    other = "b" * 40
    (outside / "snapshots" / other).mkdir()

    with pytest.raises(InvalidInputError, match="outside the models directory"):
        cache.delete_revision("org/evil", commit, cache_dir=models)
    cache.delete_revision("org/evil", None, cache_dir=models)  # removes the link, not what it points to

    assert (outside / "blobs" / "etag").read_text() == "precious"
    assert (outside / "blobs" / "x.incomplete").read_text() == "precious"
    assert not os.path.lexists(models / "models--org--evil")
    for bad_repo in ("../etc", "org/../../etc", "/etc/passwd", "org/name/x"):
        with pytest.raises(InvalidModelNameError):
            cache.delete_revision(bad_repo, None, cache_dir=models)
    with pytest.raises(InvalidInputError, match="commit id"):
        cache.delete_revision("org/evil", "../../etc", cache_dir=models)


def test_scan_models_adopts_hf_downloads(hf: HubServer, models: Path) -> None:
    repo_id, sha = new_repo(hf)
    snapshot_download(repo_id, cache_dir=models)  # what `hf download --cache-dir` does
    hf.add_repo("legacy", {"config.json": b"{}"})
    snapshot_download("legacy", cache_dir=models)
    dataset = models / "datasets--org--ds" / "snapshots" / ("c" * 40)
    dataset.mkdir(parents=True)
    (dataset / "data.csv").write_text("a,b\n")

    [found] = cache.scan_models(models)

    assert (found.repo_id, found.commit, found.refs, found.nb_files) == (repo_id, sha, ("main",), 2)
    assert found.size_on_disk == cache.size_on_disk(repo_id, sha, models) == MODEL_SIZE + len(CONFIG)
    assert found.last_modified > 0
    assert cache.is_present(repo_id, sha, models)
    assert cache.is_present(repo_id, sha, models, files=["config.json", "model.safetensors"])
    assert not cache.is_present(repo_id, sha, models, files=["config.json", "other.bin"])
    assert not cache.is_present(repo_id, "d" * 40, models)
    assert cache.size_on_disk(repo_id, "d" * 40, models) == 0
    assert cache.scan_models(models / "missing") == []


def test_sweep_incomplete_removes_only_old_partial_files(models: Path) -> None:
    blobs = models / "models--org--a" / "blobs"
    blobs.mkdir(parents=True)
    old, fresh, done = blobs / "e1.aaaa.incomplete", blobs / "e2.bbbb.incomplete", blobs / "e3"
    for path in (old, fresh, done):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(done, (an_hour_ago, an_hour_ago))

    assert cache.sweep_incomplete(models, older_than_s=600) == 1
    assert not old.exists() and fresh.exists() and done.exists()
    assert cache.sweep_incomplete(models / "missing", older_than_s=0) == 0
