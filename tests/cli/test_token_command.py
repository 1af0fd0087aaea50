"""`modeldepot token create/ls/revoke`: real processes on a real Redis; the token only ever on create's stdout.

The token store itself is tested in tests/ui/test_tokens.py.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import redis

from app.cli.token_command import parse_expiry
from app.core.settings import Settings
from app.web.auth.roles import Role
from app.web.auth.tokens import tokens_from_settings
from app.web.auth.users import make_entry
from tests.cli.conftest import Cli, one_error_line

pytestmark = pytest.mark.direct_only  # server-side commands: straight on Redis

TOKEN_LINE = re.compile(r"mdp_[A-Za-z0-9_-]{43}\n")


def created(cli: Cli, *args: str) -> str:
    result = cli("token", "create", *args)
    assert result.returncode == 0, result.stderr
    assert TOKEN_LINE.fullmatch(result.stdout), result.stdout
    token = result.stdout.strip()
    assert token not in result.stderr and "it is not shown again" in result.stderr
    return token


def test_create_prints_only_the_token_and_it_works(cli: Cli, settings_env: Settings,
                                                   redis_client: redis.Redis) -> None:
    result = cli("token", "create", "--user", "alice", "--role", "ADMIN", "--label", "ci", "--expires", "90d")
    assert result.returncode == 0, result.stderr
    assert TOKEN_LINE.fullmatch(result.stdout)
    token = result.stdout.strip()
    assert f"Created alice's admin token ci (mdp_{token[4:12]}…); expires " in result.stderr
    assert token not in result.stderr
    info = tokens_from_settings(settings_env, redis_client).verify(token)
    assert info is not None and (info.user, info.role, info.label) == ("alice", Role.ADMIN, "ci")
    assert info.expires_at is not None and abs(info.expires_at - time.time() - 90 * 86400) < 60


def test_ls_and_revoke_by_label_and_by_prefix(cli: Cli) -> None:
    ci = created(cli, "--user", "alice", "--role", "admin", "--label", "ci", "--expires", "12h")
    laptop = created(cli, "--user", "bob", "--role", "viewer")
    listed, as_json, bobs = cli.many(["token", "ls"], ["token", "ls", "--json"], ["token", "ls", "--user", "bob"])
    for result in (listed, as_json, bobs):
        assert result.returncode == 0, result.stderr
        assert ci not in result.stdout + result.stderr and laptop not in result.stdout + result.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["label", "user", "role", "prefix", "created", "last", "used", "expires"]
    assert rows[0].split()[:4] == ["ci", "alice", "admin", f"mdp_{ci[4:12]}…"]
    assert rows[1].split()[:4] == [f"token-{laptop[4:12]}", "bob", "viewer", f"mdp_{laptop[4:12]}…"]
    assert rows[1].split()[-2:] == ["never", "never"]  # never used, never expires
    entries = json.loads(as_json.stdout)
    assert [(e["label"], e["user"], e["role"], e["prefix"]) for e in entries] == [
        ("ci", "alice", "admin", ci[4:12]), (f"token-{laptop[4:12]}", "bob", "viewer", laptop[4:12])]
    assert entries[0]["expires_at"] - entries[0]["created_at"] == pytest.approx(12 * 3600)
    assert "alice" not in bobs.stdout and "bob" in bobs.stdout

    by_label = cli("token", "revoke", "ci", "--user", "alice")
    assert by_label.returncode == 0, by_label.stderr
    assert by_label.stdout == f"Revoked alice's token ci (mdp_{ci[4:12]}…).\n"
    by_prefix = cli("token", "revoke", f"mdp_{laptop[4:12]}")  # a prefix may start with "-"
    assert by_prefix.returncode == 0 and "Revoked bob's token" in by_prefix.stdout
    again, empty = cli.many(["token", "revoke", "ci"], ["token", "ls"])
    assert "No API token is labelled or starts with 'ci'" in one_error_line(again) and again.returncode == 1
    assert empty.stdout.startswith("No API tokens. Make one with `modeldepot token create")


def test_a_label_that_names_two_tokens_is_refused(cli: Cli) -> None:
    created(cli, "--user", "alice", "--role", "admin", "--label", "ci")
    created(cli, "--user", "bob", "--role", "viewer", "--label", "ci")
    line = one_error_line(cli("token", "revoke", "ci"))
    assert "'ci' names 2 tokens: alice's ci (mdp_" in line and "bob's ci" in line
    duplicate = cli("token", "create", "--user", "alice", "--role", "viewer", "--label", "ci")
    assert "alice already has an API token labelled 'ci'" in one_error_line(duplicate) and duplicate.stdout == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--role", "root"], "--role: unknown role 'root'; use 'viewer' or 'admin'"),
        (["--role", "admin", "--expires", "soon"], "--expires 'soon' is not a duration; use e.g. 90d, 12h, 30m"),
        (["--role", "admin", "--expires", "0"], "--expires '0' is not a duration"),
        (["--role", "admin", "--expires", "-5d"], "--expires '-5d' is not a duration"),
    ],
    ids=["role", "word", "zero", "negative"],
)
def test_bad_role_or_expiry_is_a_usage_error(cli: Cli, redis_client: redis.Redis, args: list[str],
                                             expected: str) -> None:
    result = cli("token", "create", "--user", "alice", *args)
    assert expected in one_error_line(result)
    assert result.returncode == 2 and result.stdout == ""
    assert redis_client.dbsize() == 0


def test_bad_label_and_the_users_file(cli: Cli, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(make_entry("bob", "viewer", "pw") + "\n")
    env = {"MODELDEPOT_AUTH_FILE": str(users)}
    label, above, unknown = cli.many(
        ["token", "create", "--user", "bob", "--role", "viewer", "--label", "has space"],
        ["token", "create", "--user", "bob", "--role", "admin"],
        ["token", "create", "--user", "carol", "--role", "viewer"],
    )
    assert "Label 'has space' must be 1-64 letters" in one_error_line(label) and label.returncode == 1
    assert above.returncode == 0 and unknown.returncode == 0  # no users file here: a token's own role counts
    capped = cli("token", "create", "--user", "bob", "--role", "admin", env=env)
    assert "bob is a viewer in the users file, so pick viewer" in one_error_line(capped) and capped.stdout == ""
    missing = cli("token", "create", "--user", "dave", "--role", "viewer", env=env)
    assert "'dave' is not in the users file" in one_error_line(missing) and missing.stdout == ""


def test_unreachable_redis_is_one_line(cli: Cli) -> None:
    result = cli("token", "ls", env={"MODELDEPOT_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 1 and "Redis" in one_error_line(result)


@pytest.mark.parametrize(("text", "seconds"), [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("45s", 45),
                                               ("3600", 3600), (" 2W ", 14 * 86400)])
def test_parse_expiry(text: str, seconds: int) -> None:
    assert parse_expiry(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "1.5d", "10y", "0s", "5 days"])
def test_parse_expiry_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_expiry(text)
