"""Fixtures of the UI tests: in-thread UI servers on a real Redis, users files, gradio clients, a browser."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.controller import Controller
from app.core.settings import Settings
from app.web.auth.users import make_entry
from tests.ui.servers import ROOT, ThreadServer

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}


@pytest.fixture
def ui_settings(settings_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of the test's Redis and data dir; no telemetry from Gradio."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    return settings_env


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    """alice is an admin, bob a viewer (passwords in PASSWORDS)."""
    path = tmp_path / "users.txt"
    path.write_text("# test users\n" + make_entry("alice", "admin", PASSWORDS["alice"]) + "\n"
                    + make_entry("bob", "viewer", PASSWORDS["bob"]) + "\n")
    return path


@pytest.fixture
def serve_ui() -> Iterator[Callable[..., tuple[ThreadServer, Controller]]]:
    """Start a UI worker (own Controller, production app composition) in a thread; stopped after the test."""
    from tests.ui.ui_worker import build_app

    started: list[tuple[ThreadServer, Controller]] = []

    def start(settings: Settings) -> tuple[ThreadServer, Controller]:
        controller = Controller(settings)
        controller.replica.wait_for(controller.store.read_version(), timeout=5)
        server = ThreadServer(build_app(controller)).start()
        started.append((server, controller))
        return server, controller

    yield start
    for server, controller in started:
        server.stop()
        controller.close()


@pytest.fixture
def gradio_client() -> Iterator[Callable[..., Any]]:
    """Factory of gradio_client Clients, closed after the test."""
    from gradio_client import Client

    clients: list[Client] = []

    def make(url: str, **kwargs: Any) -> Client:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing on CI: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder for this test's screenshots (test-artifacts/ is git-ignored)."""
    path = ARTIFACTS / request.node.name.replace("/", "_")
    path.mkdir(parents=True, exist_ok=True)
    return path
