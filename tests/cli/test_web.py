"""/readyz and /metrics when things are wrong: not in sync, Redis down."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.controller import Controller
from app.core.settings import Settings
from app.web.app import ops_router
from app.web.metrics import build_registry
from tests.redis_server import RedisServer


@pytest.fixture
def idle_controller(settings_env: Settings) -> Iterator[Controller]:
    """A controller that loaded the state but does not follow it (its listener is not running)."""
    with Controller(settings_env, listen=False) as controller:
        controller.download_model("org/one")
        yield controller


def client_for(controller: Controller) -> TestClient:
    app = FastAPI()
    app.include_router(ops_router(controller, build_registry(controller)))
    return TestClient(app)


def test_not_ready_until_in_sync(idle_controller: Controller) -> None:
    client = client_for(idle_controller)
    response = client.get("/readyz")
    assert response.status_code == 503 and "not in sync" in response.json()["reason"]
    assert client.get("/healthz").status_code == 200
    idle_controller.start()
    assert idle_controller.replica.wait_for(idle_controller.version, timeout=5)
    for _ in range(50):
        if client.get("/readyz").status_code == 200:
            break
        idle_controller.replica.wait_for(idle_controller.version + 1, timeout=0.1)
    port = urlsplit(idle_controller.settings.redis_url or "").port
    assert client.get("/readyz").json() == {"ready": True, "version": idle_controller.version,
                                            "primary": f"127.0.0.1:{port}", "via": "the URL", "replicas": []}


def test_redis_down(idle_controller: Controller, redis_server: RedisServer) -> None:
    client = client_for(idle_controller)
    redis_server.stop()
    try:
        response = client.get("/readyz")
        metrics = client.get("/metrics")
    finally:
        redis_server.start()
    assert response.status_code == 503 and "Redis is unreachable" in response.json()["reason"]
    assert metrics.status_code == 200
    samples = {
        s.name: s.value
        for f in text_string_to_metric_families(metrics.text)
        for s in f.samples
        if not s.labels or s.labels.get("status") == "queued"
    }
    assert samples["modeldepot_redis_up"] == 0
    assert samples["modeldepot_models"] == 1  # from the replica, which needs no Redis
    assert "modeldepot_downloads_succeeded_total" not in samples
