"""app/web/auth/: password hashes, the users file, Redis sessions, the sign-in throttle, the trusted header, roles.

The `modeldepot auth hash` command that makes users-file lines is tested in tests/cli/test_auth_command.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from app.core.errors import ConfigError, PermissionDeniedError, TooManySignInsError
from app.core.keys import Keys
from app.core.settings import Settings
from app.web.auth.authenticator import Authenticator, authenticator_from_settings
from app.web.auth.passwords import hash_password, verify_password
from app.web.auth.roles import Role, User, require_admin
from app.web.auth.sessions import COOKIE_NAME, SessionStore
from app.web.auth.throttle import SignInThrottle
from app.web.auth.users import UsersFile, make_entry, parse_users


class Req:
    def __init__(self, cookies: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> None:
        self.cookies = cookies or {}
        self.headers = headers or {}


def test_hash_and_verify() -> None:
    stored = hash_password("s3cret")
    salt, _, digest = stored.partition("$")
    assert len(salt) == 32 and len(digest) == 64
    assert verify_password("s3cret", stored)
    assert not verify_password("S3cret", stored)
    assert not verify_password("s3cret", "nothex$abcd")
    assert hash_password("x", salt=salt) != hash_password("x")


def test_users_file_lines() -> None:
    text = "# comment\n\n" + make_entry("alice", "admin", "pw") + "\n" + make_entry("bob", "VIEWER", "pw")
    accounts = parse_users(text)
    assert accounts["alice"].user == User("alice", Role.ADMIN)
    assert accounts["bob"].user.role is Role.VIEWER
    with pytest.raises(ConfigError, match="line 1: expected name:role:salt"):
        parse_users("alice:admin:nohash")
    with pytest.raises(ConfigError, match="unknown role 'root'"):
        parse_users("alice:root:aa$bb")
    with pytest.raises(ConfigError, match="without ':' or spaces"):
        make_entry("a b", "admin", "pw")


def test_users_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(make_entry("alice", "admin", "pw") + "\n")
    users = UsersFile(path)
    assert users.check("alice", "pw") == User("alice", Role.ADMIN)
    assert users.check("alice", "wrong") is None and users.check("nobody", "pw") is None
    path.write_text(make_entry("carol", "viewer", "pw2") + "\n# more\n")
    assert users.check("carol", "pw2") == User("carol", Role.VIEWER)
    with pytest.raises(ConfigError, match="Cannot read the users file"):
        UsersFile(tmp_path / "missing").accounts()


def test_sessions_live_in_redis_under_a_hash_of_the_token(redis_client: redis.Redis, redis_url: str) -> None:
    keys = Keys("modeldepot")
    store = SessionStore(redis_client, keys, ttl=60)
    token = store.create(User("alice", Role.ADMIN))
    raw = redis_client.get(keys.session(token))
    assert raw is not None and json.loads(raw)["role"] == "admin"
    assert token not in str(redis_client.keys("*"))
    assert 0 < redis_client.ttl(keys.session(token)) <= 60
    other_worker = SessionStore(redis.Redis.from_url(redis_url), keys, ttl=60)
    assert other_worker.get(token) == User("alice", Role.ADMIN)
    store.delete(token)
    assert store.get(token) is None
    assert other_worker.get("not-a-token") is None


def test_login_and_roles(redis_client: redis.Redis, tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(make_entry("alice", "admin", "pw") + "\n")
    auth = Authenticator(users=UsersFile(path), sessions=SessionStore(redis_client, Keys("md"), ttl=60))
    with pytest.raises(PermissionDeniedError, match="Wrong user name or password"):
        auth.login("alice", "nope")
    user, token = auth.login(" alice ", "pw")
    assert auth.peek(Req({COOKIE_NAME: token})) == (False, None)  # not seen yet: only Redis knows
    assert auth.user_for(Req({COOKIE_NAME: token})) == user
    assert auth.peek(Req({COOKIE_NAME: token})) == (True, user)  # remembered: no I/O for the next ticks
    assert auth.peek(Req()) == (True, None)
    assert auth.user_for(Req()) is None
    auth.logout(Req({COOKIE_NAME: token}))
    assert auth.user_for(Req({COOKIE_NAME: token})) is None


def test_sign_in_pauses_after_wrong_passwords_and_a_success_resets(redis_client: redis.Redis,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(make_entry("alice", "admin", "pw") + "\n")
    keys = Keys("md")
    throttle = SignInThrottle(redis_client, keys, max_failures=2, pause_s=90)
    auth = Authenticator(users=UsersFile(path), sessions=SessionStore(redis_client, keys, ttl=60), throttle=throttle)
    with pytest.raises(PermissionDeniedError, match="Wrong user name"):
        auth.login("alice", "nope")
    auth.login("alice", "pw")  # a success forgets the earlier wrong password
    for _ in range(2):
        with pytest.raises(PermissionDeniedError, match="Wrong user name"):
            auth.login(" alice", "nope")
    with pytest.raises(TooManySignInsError, match="Try again in 2 minutes"):
        auth.login("alice", "pw")
    assert 0 < redis_client.ttl(keys.login_failures("alice")) <= 90
    assert "alice" not in str(redis_client.keys("*"))  # the name is hashed in the key
    redis_client.delete(keys.login_failures("alice"))  # the pause ran out
    assert auth.login("alice", "pw")[0].name == "alice"


def test_trusted_header(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path, auth_header="X-Forwarded-User",
                        auth_admins="carol, dave")
    auth = authenticator_from_settings(settings, redis.Redis.from_url(settings.redis_url or ""))
    assert auth is not None and not auth.has_login_form
    assert auth.user_for(Req(headers={"x-forwarded-user": "carol"})) == User("carol", Role.ADMIN)
    assert auth.user_for(Req(headers={"x-forwarded-user": "erin"})) == User("erin", Role.VIEWER)
    with pytest.raises(PermissionDeniedError, match="sign in through your SSO"):
        auth.login("carol", "pw")


def test_auth_is_off_by_default(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path)
    assert authenticator_from_settings(settings, redis.Redis()) is None
    bad = Settings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path, auth_file=tmp_path / "missing")
    with pytest.raises(ConfigError):
        authenticator_from_settings(bad, redis.Redis())


def test_only_admins_may_write() -> None:
    require_admin(User("alice", Role.ADMIN), "download models")
    with pytest.raises(PermissionDeniedError, match="bob is a viewer and cannot download models"):
        require_admin(User("bob", Role.VIEWER), "download models")
