"""Fixtures of the download tests: one local Hub per module (tests/hubserver.py), this process pointed at it.

The ``hf`` here shortens huggingface_hub's waits: its backoff and resume sleeps (1-8 s, or ``Retry-After`` + 1 s)
become 10 ms, the read timeout of file transfers becomes 1 s, and file bodies are read in 64 kB chunks instead of
10 MB so progress moves within small test files. test_transfer.py has an ``hf`` of its own: the transfer engine
waits and retries by itself.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from huggingface_hub import constants, file_download

from app.core.keys import Keys
from tests.hubserver import HubServer
from tests.support.hub import module_hub, serving  # noqa: F401
from workers.download import hub
from workers.download.plan import DownloadPlan
from workers.download.transfer.claims import PartialClaims
from workers.download.transfer.engine import Transfer, TransferOptions


class _FastClock:
    """Stands in for the ``time`` module of huggingface_hub's HTTP code: sleeps at most 10 ms."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.01))


@pytest.fixture
def hf(module_hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:  # noqa: F811
    """The module's Hub, with huggingface_hub pointed at it and its retry waits shortened."""
    monkeypatch.setattr(importlib.import_module("huggingface_hub.utils._http"), "time", _FastClock())
    monkeypatch.setattr(file_download, "time", _FastClock())
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    with serving(module_hub, monkeypatch, stall_seconds=3) as server:
        yield server


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def fetch(redis_client: redis.Redis) -> Callable[..., tuple[DownloadPlan, Path]]:
    """Plan and download a repo as a download job does (the transfer engine itself: test_transfer.py)."""

    def fetch(repo_id: str, models: Path, **kwargs: Any) -> tuple[DownloadPlan, Path]:
        plan = hub.plan_download(repo_id, cache_dir=models, **kwargs)
        claims = PartialClaims(redis_client, Keys("test"), "job", ttl=5)
        transfer = Transfer(plan, cache_dir=models, claims=claims, options=TransferOptions(),
                            **{k: v for k, v in kwargs.items() if k in ("token", "endpoint")})
        return plan, transfer.run(lambda _: None)

    return fetch
