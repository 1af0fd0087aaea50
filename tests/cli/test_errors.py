"""Every error path of the command line: a non-zero exit, one line on stderr, no traceback.

The commands run as real processes, several at a time (each pays Python's start-up).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from app.core.controller import Controller
from app.core.errors import SnapshotImportError
from app.core.settings import Settings
from app.core.snapshot_io import read_document
from tests.cli.conftest import Cli, one_error_line
from tests.redis_server import RedisServer, free_port
from tests.support.locked_redis import PASSWORD

Check = Callable[[subprocess.CompletedProcess[str]], None]


def error_line(*expected: str) -> Check:
    def check(result: subprocess.CompletedProcess[str]) -> None:
        line = one_error_line(result)
        for text in expected:
            assert text in line, line

    return check


def traceback_shown(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "NotFoundError" in result.stderr, result.stderr


def run_all(cli: Cli, cases: dict[str, tuple[list[str], dict[str, str], Check]]) -> None:
    """Run every case at once, then report every case whose check failed."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {name: pool.submit(cli, *args, env=env) for name, (args, env, _) in cases.items()}
    failures = []
    for name, (_, _, check) in cases.items():
        try:
            check(results[name].result())
        except AssertionError as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)


def test_error_paths(cli: Cli, redis_client: redis.Redis) -> None:
    run_all(
        cli,
        {
            "bad model name": (["pull", "not-a-model"], {}, error_line("Model name 'not-a-model' is not valid")),
            "bad revision": (["pull", "org/name@"], {}, error_line("Nothing follows '@'")),
            "rm bad name": (["rm", "not-a-model", "--yes"], {}, error_line("Model name 'not-a-model' is not valid")),
            "rm unknown": (["rm", "org/unknown", "--yes"], {}, error_line("org/unknown is not in the list")),
            "cancel unknown": (["cancel", "org/unknown"], {}, error_line("org/unknown is not in the list")),
            "pause unknown": (["pause", "org/unknown"], {}, error_line("org/unknown is not in the list")),
            "resume unknown": (["resume", "org/unknown"], {}, error_line("org/unknown is not in the list")),
            "verify unknown": (["verify", "org/unknown@v1"], {}, error_line("org/unknown@v1 is not in the list")),
            "--debug": (["--debug", "cancel", "org/unknown"], {}, traceback_shown),
        },
    )
    assert redis_client.hlen("modeldepot:models") == 0


@pytest.mark.direct_only
def test_server_side_error_paths(cli: Cli, tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    malformed = tmp_path / "malformed.json"
    malformed.write_text("{nope")
    run_all(
        cli,
        {
            "ls, Redis down": (["ls"], {"MODELDEPOT_REDIS_URL": down}, error_line("Cannot reach Redis", down)),
            "status, Redis down": (["status"], {"MODELDEPOT_REDIS_URL": down}, error_line("unhealthy", "unreachable")),
            "invalid setting": (
                ["ls"],
                {"MODELDEPOT_REDIS_URL": "http://nope"},
                error_line("MODELDEPOT_REDIS_URL", "Fix the environment"),
            ),
            "malformed snapshot": (
                ["snapshot", "import", str(malformed)],
                {},
                error_line("is not a valid Model Depot snapshot", "Nothing was imported"),
            ),
            "missing snapshot": (
                ["snapshot", "import", str(tmp_path / "nope.json")],
                {},
                error_line("Cannot read", "No such file"),
            ),
        },
    )


def test_the_api_out_of_reach(cli: Cli) -> None:
    """Whatever the mode, a URL that cannot be used is one clear line (the http mode's own URL aside)."""
    refused = f"http://127.0.0.1:{free_port()}"
    run_all(
        cli,
        {
            "nobody listens": (["ls"], {"MODELDEPOT_URL": refused},
                               error_line(f"cannot reach {refused}", "Check MODELDEPOT_URL")),
            "--url wins": (["--url", refused, "pin", "org/a"], {}, error_line(f"cannot reach {refused}")),
            "status": (["status"], {"MODELDEPOT_URL": refused}, error_line(f"cannot reach {refused}")),
            "not a URL": (["ls"], {"MODELDEPOT_URL": "modeldepot:7860"},
                          error_line("MODELDEPOT_URL", "must be the address of a UI worker")),
            "--url not a URL": (["--url", "nope", "ls"], {}, usage_error("must be the address of a UI worker")),
        },
    )


def usage_error(*expected: str) -> Check:
    def check(result: subprocess.CompletedProcess[str]) -> None:
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr, result.stderr
        for text in expected:
            assert text in result.stderr, result.stderr

    return check


def without_secrets(check: Check) -> Check:
    def checked(result: subprocess.CompletedProcess[str]) -> None:
        check(result)
        assert "wrong-pw" not in result.stderr + result.stdout, result.stderr
        assert PASSWORD not in result.stderr + result.stdout, result.stderr

    return checked


@pytest.mark.direct_only
def test_redis_refuses_the_password(cli: Cli, locked_redis: RedisServer) -> None:
    address = f"127.0.0.1:{locked_redis.port}"
    wrong = {"MODELDEPOT_REDIS_URL": f"redis://:wrong-pw@{address}/0"}
    missing = {"MODELDEPOT_REDIS_URL": f"redis://{address}/0"}
    refused = ("refused the user or password in MODELDEPOT_REDIS_URL", address, "redis://USER:PASSWORD@")
    required = ("requires a password", address, "redis://:PASSWORD@")
    run_all(
        cli,
        {
            "ls, wrong password": (["ls"], wrong, without_secrets(error_line(*refused))),
            "ls, wrong user": (
                ["ls"],
                {"MODELDEPOT_REDIS_URL": f"redis://bob:{PASSWORD}@{address}/0"},
                without_secrets(error_line(*refused)),
            ),
            "ls, no password (NOAUTH)": (["ls"], missing, error_line(*required)),
            "status, wrong password": (["status"], wrong, without_secrets(error_line("unhealthy", *refused))),
            "status, no password (NOAUTH)": (["status"], missing, error_line("unhealthy", *required)),
        },
    )


def test_errors_that_need_a_model(cli: Cli, settings_env: Settings) -> None:
    with Controller(settings_env, listen=False) as controller:
        controller.download_model("org/kept")
    run_all(
        cli,
        {
            "rm declined": (["rm", "org/kept"], {}, error_line("nothing was removed")),
            "cancel twice": (["cancel", "org/kept@v1"], {}, error_line("org/kept@v1 is not in the list")),
            "resume queued": (
                ["resume", "org/kept"],
                {},
                error_line("org/kept is queued; only paused downloads can be resumed."),
            ),
            "verify queued": (["verify", "org/kept"], {}, error_line("org/kept is queued; only ready models can be")),
        },
    )
    with Controller(settings_env, listen=False) as controller:
        assert controller.get_model("org/kept")["status"] == "queued"


@pytest.mark.direct_only
def test_import_over_models(cli: Cli, settings_env: Settings, tmp_path: Path) -> None:
    with Controller(settings_env, listen=False) as controller:
        controller.download_model("org/kept")
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps({"format": 1, "version": 1, "models": {}, "logs": []}))
    error_line("already holds 1 models", "--force")(cli("snapshot", "import", str(snapshot)))


MALFORMED = {
    "not a snapshot": (json.dumps({"hello": "world"}), "not a snapshot document"),
    "bad version": (json.dumps({"format": 1, "version": -3, "models": {}, "logs": []}), "'version'"),
    "bad record": (
        json.dumps({"format": 1, "version": 3, "logs": [], "models": {"org/a": {"name": "org/a"}}}),
        "model 'org/a' is malformed",
    ),
    "name mismatch": (
        json.dumps(
            {
                "format": 1,
                "version": 3,
                "logs": [],
                "models": {"org/a": {"name": "org/b", "repo_id": "org/b", "status": "ready"}},
            }
        ),
        "does not match its name",
    ),
    "not utf-8": (b"\xff\xfe".decode("latin-1"), "not a valid"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_documents(tmp_path: Path, kind: str) -> None:
    text, reason = MALFORMED[kind]
    path = tmp_path / "snapshot.json"
    path.write_text(text, encoding="latin-1" if kind == "not utf-8" else "utf-8")
    with pytest.raises(SnapshotImportError) as caught:
        read_document(str(path))
    assert reason in str(caught.value) or "Cannot read" in str(caught.value)
    assert "Nothing was imported" in str(caught.value)
