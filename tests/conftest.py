from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.core.settings import Settings, reset_settings
from tests.redis_server import RedisServer, clean_database
from tests.support.locked_redis import PASSWORD


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A second redis-server that wants a password (``tests.support.locked_redis.PASSWORD``)."""
    server = RedisServer(tmp_path_factory.mktemp("locked-redis"), password=PASSWORD, appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database on the session's real redis-server."""
    yield from clean_database(redis_server)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    (path / "models").mkdir(parents=True)
    return path


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, data_dir: Path) -> Iterator[Settings]:
    """Environment (inherited by subprocesses) and settings for one test."""
    monkeypatch.setenv("MODELDEPOT_REDIS_URL", redis_url)
    monkeypatch.setenv("MODELDEPOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MODELDEPOT_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("MODELDEPOT_HEARTBEAT_TTL", "3")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    reset_settings()
    from app.core.settings import get_settings

    yield get_settings()
    reset_settings()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def pytest_report_header() -> str:
    return f"CI={os.environ.get('CI', '')}"
