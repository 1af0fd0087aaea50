"""Fixtures for the command-line tests: run `python -m app.cli` for real, a local hub, RQ workers.

A test that takes ``cli`` runs in both modes (its ``mode`` parameter): ``direct``, the command line on the test's
Redis as on a server, and ``http``, the command line with only MODELDEPOT_URL in its environment (no Redis URL,
no data dir) going through the API of one real UI worker the session shares. Output and exit codes must be the
same. Tests of what only a server does (serve, snapshot, auth, prune's volume, Redis errors) are marked
``direct_only``.
"""

from __future__ import annotations

import getpass
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from app.core.keys import Keys
from app.core.settings import Settings
from app.core.store import Store
from app.web.auth.roles import Role
from app.web.auth.tokens import TokenStore
from app.web.auth.users import UsersFile, make_entry
from tests.redis_server import RedisServer, clean_database
from tests.support.hub import hub  # noqa: F401
from tests.support.waiting import wait_until
from tests.support.workers import start_worker, worker_env  # noqa: F401
from tests.ui.servers import UiWorkerProcess

MODES = ("direct", "http")
API_USER = "cli-admin"
"""The user of the http mode's API token (an admin in the session UI worker's users file)."""
HIDDEN_OVER_HTTP = ("MODELDEPOT_REDIS_URL", "REDIS_URL", "MODELDEPOT_DATA_DIR")
"""What a command over HTTP must do without: any way to Redis or the volume."""
EPOCH = 1_000_000
"""How far each http test moves the state version on (see :meth:`ApiServer.start_clean`)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "direct_only: a server-side test: the command line on Redis only, not over "
                                       "the HTTP API")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mode" in metafunc.fixturenames:
        direct_only = metafunc.definition.get_closest_marker("direct_only") is not None
        metafunc.parametrize("mode", ["direct"] if direct_only else list(MODES), indirect=True)


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """``direct`` or ``http`` (set by :func:`pytest_generate_tests`)."""
    return str(request.param)


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m app.cli ARGS` with the test's environment (MODELDEPOT_* set by ``settings_env``)."""
    return _run(list(args), {**os.environ, "COLUMNS": "200", **(env or {})}, input=input, timeout=timeout)


def _run(args: list[str], env: dict[str, str], *, input: str | None,
         timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


class Cli:
    """Runs the command line of one mode: directly on the test's Redis, or over the HTTP API at ``url``."""

    def __init__(self, mode: str, url: str | None = None, token: str | None = None) -> None:
        self.mode = mode
        self.url = url
        self.token = token

    @property
    def actor(self) -> str:
        """Who the event log names for a command of this mode: the shell's user, or the API token's user."""
        return f"{getpass.getuser()} (cli)" if self.url is None else API_USER

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "COLUMNS": "200"}
        if self.url is not None:
            for name in HIDDEN_OVER_HTTP:
                env.pop(name, None)
            env["MODELDEPOT_URL"] = self.url
            if self.token is not None:
                env["MODELDEPOT_TOKEN"] = self.token
        return {**env, **(extra or {})}

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _run(list(args), self.env(env), input=input, timeout=timeout)

    def many(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands at the same time (each pays Python's start-up)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: self(*args), commands))

    def spawn(self, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
        """Start a command that keeps running (it follows something); the caller ends it."""
        return subprocess.Popen([*prefix, sys.executable, "-m", "app.cli", *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env())


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed with exactly one line on stderr and no traceback; return that line."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


class ApiServer:
    """The session's UI worker (`python -m tests.ui.ui_worker`) on the session's Redis, with sign-in on: the
    command line reaches it with only MODELDEPOT_URL and an admin's API token (MODELDEPOT_TOKEN).

    Each test flushes Redis; :meth:`start_clean` then brings this worker's replica along and makes the test's
    token before the test runs.
    """

    def __init__(self, redis_server: RedisServer, directory: Path) -> None:
        self.redis_server = redis_server
        self.data_dir = directory / "data"
        (self.data_dir / "models").mkdir(parents=True)
        self.users = directory / "users"
        self.users.write_text(make_entry(API_USER, "admin", secrets.token_urlsafe(16)) + "\n")
        self.token: str | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPOT_") and k != "REDIS_URL"}
        env |= {"MODELDEPOT_REDIS_URL": redis_server.url, "MODELDEPOT_DATA_DIR": str(self.data_dir),
                "MODELDEPOT_AUTH_FILE": str(self.users), "GRADIO_ANALYTICS_ENABLED": "False",
                "HF_HUB_DISABLE_TELEMETRY": "1"}
        self.worker = UiWorkerProcess(env, directory, "cli-api")
        self.epoch = 0

    @property
    def url(self) -> str:
        return self.worker.url

    @property
    def state_file(self) -> Path:
        return self.data_dir / "controller_state.json"

    def start_clean(self, settings: Settings) -> None:
        """Start the test on an empty state at a version beyond any this worker saw, and wait until its replica is
        there: a flushed Redis would otherwise count versions from 0 again, which the replica takes for old news
        until its next version check (up to 2 s)."""
        self.state_file.unlink(missing_ok=True)  # what the worker saved in the last test: no reseeding from it
        self.epoch += EPOCH
        connection = redis.Redis.from_url(self.redis_server.url)
        store = Store.for_settings(connection, settings, sender="tests")

        def seeded() -> bool:
            if store.seed(self.epoch, {}, []):
                return True
            connection.flushall()  # the worker reseeded Redis from its snapshot in between
            return False

        try:
            wait_until(seeded, 10, "an empty Redis to seed")
            tokens = TokenStore(connection, Keys(settings.key_prefix), users=UsersFile(self.users))
            self.token, _ = tokens.create(API_USER, Role.ADMIN, label="cli-tests")
        finally:
            connection.close()
        wait_until(self._at_epoch, 30, f"the UI worker's replica to reach version {self.epoch}")

    def _at_epoch(self) -> bool:
        try:
            answer = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("version") == self.epoch


@pytest.fixture(scope="session")
def api_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The http mode's own redis-server. The session UI worker's listener reseeds a Redis it sees emptied, so on
    the redis-server every other test flushes it would fill what those tests expect to find empty."""
    server = RedisServer(tmp_path_factory.mktemp("cli-api-redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[str]:
    """A clean database: on the http mode's redis-server for an http case, else on the session's."""
    http = "mode" in request.fixturenames and request.getfixturevalue("mode") == "http"
    yield from clean_database(request.getfixturevalue("api_redis") if http else redis_server)


@pytest.fixture(scope="session")
def api_server(api_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(api_redis, tmp_path_factory.mktemp("cli-api"))
    server.worker.start()
    try:
        server.worker.wait_ready()
        yield server
    finally:
        server.worker.stop()


@pytest.fixture
def api(api_server: ApiServer, settings_env: Settings) -> Iterator[str]:
    """The URL of the session's UI worker, its replica caught up with this test's empty Redis."""
    api_server.start_clean(settings_env)
    yield api_server.url
    api_server.state_file.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _api_first(request: pytest.FixtureRequest) -> None:
    """In http mode, bring the UI worker along before any other fixture writes to the test's Redis (autouse
    fixtures come first): its clean start must not find, or flush, what the test put there."""
    if "mode" in request.fixturenames and request.getfixturevalue("mode") == "http":
        request.getfixturevalue("api")


@pytest.fixture
def cli(mode: str, settings_env: Settings, request: pytest.FixtureRequest) -> Cli:
    if mode != "http":
        return Cli(mode)
    url = request.getfixturevalue("api")
    return Cli(mode, url, request.getfixturevalue("api_server").token)
