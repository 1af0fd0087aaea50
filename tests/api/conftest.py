"""Fixtures of the API tests: a real UI worker (the production app composition) in a thread on a real Redis, or
two as processes behind HAProxy; the users file, sign-in and tokens; real RQ workers and the test Hub."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.core.controller import Controller
from app.core.settings import Settings
from app.web.auth.roles import Role
from app.web.auth.sessions import COOKIE_NAME
from app.web.auth.tokens import TokenStore, tokens_from_settings
from tests.support.hub import hub  # noqa: F401
from tests.support.storms import ui_stack
from tests.support.workers import start_worker, worker_env  # noqa: F401
from tests.ui.conftest import PASSWORDS, users_file  # noqa: F401
from tests.ui.servers import Balancer, ThreadServer, UiWorkerProcess

API = "/api/v1"


@dataclass
class Api:
    """One UI worker serving the API, and the controller behind it (in this process)."""

    server: ThreadServer
    controller: Controller

    @property
    def url(self) -> str:
        return self.server.url + API

    @property
    def origin(self) -> str:
        return self.server.url

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@pytest.fixture
def start_api(settings_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Api]]:
    """``start_api(**settings)`` starts a UI worker in a thread with the test's settings changed by ``settings``."""
    from tests.ui.ui_worker import build_app

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    started: list[Api] = []

    def start(**changes: Any) -> Api:
        controller = Controller(settings_env.model_copy(update=changes))
        controller.replica.wait_for(controller.store.read_version(), timeout=5)
        api = Api(ThreadServer(build_app(controller)).start(), controller)
        started.append(api)
        return api

    yield start
    for api in started:
        api.server.stop()
        api.controller.close()


@pytest.fixture
def api(start_api: Callable[..., Api]) -> Api:
    """A UI worker with sign-in off (the default): everyone is an admin."""
    return start_api()


@pytest.fixture
def auth_api(start_api: Callable[..., Api], users_file: Path) -> Api:  # noqa: F811
    """A UI worker with the users file: alice is an admin, bob a viewer."""
    return start_api(auth_file=users_file)


@pytest.fixture
def tokens(settings_env: Settings, users_file: Path, redis_client: redis.Redis) -> TokenStore:  # noqa: F811
    """The token store the auth_api worker checks against (same Redis, same users file)."""
    return tokens_from_settings(settings_env.model_copy(update={"auth_file": users_file}), redis_client)


def login(base: str, name: str) -> str:
    """Sign ``name`` in at ``base`` (the worker's root URL); returns the session cookie's value."""
    response = httpx.post(base + "/login", data={"username": name, "password": PASSWORDS[name], "next": "/"},
                          follow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    return response.cookies[COOKIE_NAME]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_token(store: TokenStore, user: str, role: str, **kwargs: Any) -> str:
    token, _ = store.create(user, Role(role), **kwargs)
    return token


@pytest.fixture
def cluster(settings_env: Settings, users_file: Path, tmp_path: Path  # noqa: F811
            ) -> Iterator[tuple[list[UiWorkerProcess], Balancer]]:
    """Two UI worker processes behind HAProxy (deploy/haproxy.cfg), sign-in with the users file."""
    env = {**os.environ, "MODELDEPOT_AUTH_FILE": str(users_file)}
    with ui_stack(env, tmp_path, 2) as stack:
        yield stack
