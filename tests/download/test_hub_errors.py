"""workers/download/hub_errors.py: what huggingface_hub, the network and the disk raise becomes our errors, with
messages that say what to do and never hold a token."""

from __future__ import annotations

import errno
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import (
    DiskFullError,
    GatedRepoError,
    HubNetworkError,
    NoMatchingFilesError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from tests.download.repos import MODEL_SIZE, new_repo
from tests.hubserver import HubServer
from workers.download import hub
from workers.download.hub_errors import hub_errors

TOKEN = "hf_secret_test_token_123"


def full_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def test_unknown_repo(hf: HubServer, models: Path) -> None:
    with pytest.raises(RepoNotFoundError, match="HF_TOKEN") as caught:
        hub.plan_download("org/does-not-exist", cache_dir=models, token=TOKEN)
    assert "org/does-not-exist" in str(caught.value)
    assert TOKEN not in full_text(caught.value)


def test_gated_repo_needs_a_valid_token(hf: HubServer, models: Path, fetch: Callable[..., Any]) -> None:
    repo_id, _ = new_repo(hf, gated=True)
    hf.valid_tokens.add(TOKEN)

    for token in (None, "hf_wrong_token"):
        with pytest.raises(GatedRepoError, match="HF_TOKEN on the workers") as caught:
            hub.plan_download(repo_id, cache_dir=models, token=token)
        assert "hf_wrong_token" not in full_text(caught.value)

    _, snapshot = fetch(repo_id, models, token=TOKEN)
    assert (snapshot / "model.safetensors").stat().st_size == MODEL_SIZE


def test_unknown_revision(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)

    for revision in ("no-such-branch", "0" * 40):
        with pytest.raises(RevisionNotFoundError, match=r"e\.g\. main"):
            hub.plan_download(repo_id, revision=revision, cache_dir=models)


def test_patterns_matching_nothing_are_named(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)

    with pytest.raises(NoMatchingFilesError, match=r"include '\*\.gguf', 'q4/\*'; exclude '\*\.md'"):
        hub.plan_download(
            repo_id, allow_patterns=["*.gguf", "q4/*"], ignore_patterns=["*.md"], cache_dir=models
        )


def test_hub_failing_after_retries(hf: HubServer, models: Path) -> None:
    repo_id, _ = new_repo(hf)
    hf.set_fault(repo_id, None, "500")

    with pytest.raises(HubNetworkError, match="HTTP 500") as caught:
        hub.plan_download(repo_id, cache_dir=models, token=TOKEN)

    assert hf.url in str(caught.value)
    assert TOKEN not in full_text(caught.value)
    heads = [r for r in hf.requests if r[0] == "HEAD" and repo_id in r[1]]
    assert len(heads) > 2  # huggingface_hub retried before giving up


def test_unreachable_hub_names_the_endpoint_without_credentials(hf: HubServer, models: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://user:hunter2@127.0.0.1:{port}"

    with pytest.raises(HubNetworkError, match=f"http://127.0.0.1:{port}") as caught:
        hub.plan_download("org/name", cache_dir=models, endpoint=endpoint, token=TOKEN)
    assert "hunter2" not in str(caught.value)


def test_disk_full_anywhere_in_the_chain() -> None:
    def fail() -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("wrapped") from e

    with pytest.raises(DiskFullError), hub_errors("org/name"):
        fail()
