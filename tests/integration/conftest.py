from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.controller import Controller
from app.core.settings import Settings
from tests.hubserver import HubServer
from tests.integration.stack import WorkerProcess


@pytest.fixture
def hub() -> Iterator[HubServer]:
    server = HubServer().start()
    yield server
    server.stop()


@pytest.fixture
def worker_env(settings_env: Settings, hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "5"}


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    started: list[WorkerProcess] = []

    def start(queues: str = "maintenance,downloads") -> WorkerProcess:
        worker = WorkerProcess(worker_env, tmp_path, queues)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def controller(settings_env: Settings) -> Iterator[Controller]:
    with Controller(settings_env) as c:
        yield c
