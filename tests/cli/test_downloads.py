"""Downloads end to end: the CLI, a real RQ worker, the local hub, /metrics of a real UI app."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.core.controller import Controller
from app.core.settings import Settings
from app.web.app import ops_router
from app.web.metrics import build_registry
from tests.cli.conftest import Cli, one_error_line
from tests.hubserver import HubServer
from tests.support.workers import WorkerProcess
from tests.ui.servers import ThreadServer

pytestmark = pytest.mark.slow


@pytest.fixture
def web(settings_env: Settings) -> Iterator[ThreadServer]:
    """The ops endpoints of a UI worker (the whole app, Gradio included, is run by tests/deploy)."""
    with Controller(settings_env) as controller:
        app = FastAPI()
        app.include_router(ops_router(controller, build_registry(controller)))
        server = ThreadServer(app).start()
        yield server
        server.stop()


def scrape(web: ThreadServer) -> dict[str, float]:
    """Every sample of /metrics, keyed by name and labels."""
    response = httpx.get(f"{web.url}/metrics", timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def moved(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def test_pull_wait_shows_progress_and_metrics_move(
    cli: Cli, hub: HubServer, web: ThreadServer, start_worker: Callable[[], WorkerProcess], redis_client: redis.Redis
) -> None:
    commit = hub.add_repo("org/tiny", {"config.json": b"{}", "w.bin": 3_000_000})
    hub.throttle_bps = 1_500_000
    start_worker().wait_alive(redis_client)
    assert httpx.get(f"{web.url}/healthz").status_code == 200
    assert httpx.get(f"{web.url}/readyz").json()["ready"] is True
    before = scrape(web)

    result = cli("pull", "org/tiny", "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Queued org/tiny.\n")
    assert re.search(
        r"org/tiny: downloading [\d.]+ [kM]?B / 3\.0 MB \(\d+%\) at [\d.]+ [kM]?B/s, ETA ", result.stdout
    ), result.stdout
    assert result.stdout.endswith(f"org/tiny is ready: 3.0 MB at commit {commit[:7]}.\n")

    failed = cli("pull", "org/missing", "--wait")
    line = one_error_line(failed)
    assert "download of org/missing failed" in line and "not found" in line
    after = scrape(web)
    assert moved(before, after, "modeldepot_downloads_succeeded_total") == 1
    assert moved(before, after, "modeldepot_downloads_failed_total") == 1
    assert moved(before, after, "modeldepot_bytes_downloaded_total") == 3_000_002
    assert moved(before, after, "modeldepot_job_duration_seconds_count") == 1
    assert after["modeldepot_models{status=ready}"] == 1 and after["modeldepot_models{status=failed}"] == 1
    assert after["modeldepot_workers_alive{queue=modeldepot-downloads}"] == 1
    assert after["modeldepot_redis_up"] == 1 and after["modeldepot_replica_version_lag"] == 0
    assert moved(before, after, "modeldepot_downloads_started_total") == 2


def test_status_reports_a_killed_worker_as_gone(
    cli: Cli, start_worker: Callable[[], WorkerProcess], redis_client: redis.Redis, settings_env: Settings
) -> None:
    worker = start_worker()
    name = worker.wait_alive(redis_client)
    healthy, as_json = cli.many(["status"], ["status", "--json"])
    assert healthy.returncode == 0 and "healthy" in healthy.stdout and name in healthy.stdout
    report = json.loads(as_json.stdout)
    assert report["healthy"] and [(w["name"], w["alive"]) for w in report["workers"]] == [(name, True)]
    rq = subprocess.run(
        [
            str(Path(sys.executable).parent / "rq"),
            "info",
            "--url",
            settings_env.redis_url or "",
            "-S",
            "json",
            "--raw",
            "modeldepot-downloads",
            "modeldepot-maintenance",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert rq.returncode == 0, rq.stderr
    assert "queue modeldepot-downloads" in rq.stdout and f"worker {name}" in rq.stdout

    worker.kill_all()
    gone = cli("status")
    line = one_error_line(gone)
    assert "no live worker on the downloads queue" in line
    assert re.search(rf"{name}\s.*\sgone\s", gone.stdout), gone.stdout
    assert f"worker {name}" in gone.stdout and "is gone" in gone.stdout
