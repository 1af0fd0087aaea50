"""Personal API tokens (app/web/auth/tokens.py) on a real Redis, and the page's API tokens panel.

The `modeldepot token` commands are tested in tests/cli/test_token_command.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from app.core.controller import Controller
from app.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TooManyTokenAttemptsError,
)
from app.core.keys import Keys, token_digest
from app.core.settings import Settings
from app.web.auth import tokens as tokens_module
from app.web.auth.authenticator import Authenticator
from app.web.auth.roles import Role
from app.web.auth.tokens import TokenStore, TokenThrottle, tokens_from_settings
from app.web.auth.users import UsersFile, make_entry
from app.web.ui.access import Access
from app.web.ui.tokens import SECRET_LABEL, TokenPanel, expiry_seconds, render_tokens
from tests.support.waiting import wait_until

KEYS = Keys("md")
TOKEN_RE = re.compile(r"mdp_[A-Za-z0-9_-]{43}")


class Req:
    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.cookies: dict[str, str] = {}
        self.headers = headers or {}


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    write_users(path, alice="admin", bob="viewer")
    return path


def write_users(path: Path, **roles: str) -> None:
    path.write_text("".join(make_entry(name, role, "pw") + "\n" for name, role in roles.items()))


def store(client: redis.Redis, users: Path | None = None) -> TokenStore:
    return TokenStore(client, KEYS, users=UsersFile(users) if users is not None else None)


def everything_in(client: redis.Redis) -> str:
    """Every key and every value in Redis, as one string."""
    parts: list[str] = []
    for key in client.scan_iter("*"):
        parts.append(key.decode())
        kind = client.type(key).decode()
        if kind == "string":
            parts.append(client.get(key).decode())
        elif kind == "hash":
            parts += [f"{f.decode()}={v.decode()}" for f, v in client.hgetall(key).items()]
        else:
            raise AssertionError(f"unexpected {kind} key {key!r}")
    return "\n".join(parts)


# ---- the store -----------------------------------------------------------------------------------------


def test_create_verify_list_revoke(redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = store(redis_client)
    token, info = tokens.create("alice", Role.ADMIN, label="ci", expires_s=3600)
    assert TOKEN_RE.fullmatch(token) and info.prefix == token[4:12] and info.shown == f"mdp_{info.prefix}…"
    assert (info.label, info.user, info.role, info.last_used_at) == ("ci", "alice", Role.ADMIN, None)
    assert info.expires_at is not None and abs(info.expires_at - (info.created_at + 3600)) < 1
    assert 3590 < redis_client.ttl(KEYS.api_token(token)) <= 3600

    seen = tokens.verify(token)
    assert seen is not None and (seen.user, seen.role, seen.label) == ("alice", Role.ADMIN, "ci")
    assert seen.last_used_at is not None and abs(seen.last_used_at - time.time()) < 5
    assert tokens.list()[0].last_used_at == seen.last_used_at  # ls shows the last use

    other, other_info = tokens.create("bob", Role.VIEWER)
    assert other_info.label == f"token-{other_info.prefix}" and other_info.expires_at is None
    assert redis_client.ttl(KEYS.api_token(other)) == -1  # never expires
    assert [i.label for i in tokens.list()] == ["ci", other_info.label]
    assert [i.user for i in tokens.list("bob")] == ["bob"]

    everything = everything_in(redis_client)
    assert token not in everything and other not in everything
    assert token_digest(token) in everything  # it is there, as a hash
    assert token not in caplog.text and other not in caplog.text

    revoked = tokens.revoke("ci", user="alice")
    assert (revoked.label, revoked.user, revoked.prefix) == ("ci", "alice", info.prefix)
    assert tokens.verify(token) is None
    assert redis_client.hlen(KEYS.api_tokens) == 1 and not redis_client.exists(KEYS.api_token(token))
    assert tokens.revoke(other_info.prefix).user == "bob"
    assert tokens.list() == [] and everything_in(redis_client) == ""


def test_revoke_by_label_prefix_or_token_and_its_refusals(redis_client: redis.Redis) -> None:
    tokens = store(redis_client)
    a, a_info = tokens.create("alice", Role.ADMIN, label="ci")
    b, _ = tokens.create("bob", Role.VIEWER, label="ci")
    _, c_info = tokens.create("carol", Role.VIEWER, label="laptop")

    with pytest.raises(ConflictError) as conflict:
        tokens.revoke("ci")
    message = str(conflict.value)
    assert "names 2 tokens" in message and "alice's ci" in message and "bob's ci" in message
    assert a_info.shown in message and "Revoke one by its prefix" in message
    with pytest.raises(ConflictError, match="already has an API token labelled 'ci'"):
        tokens.create("alice", Role.VIEWER, label="ci")
    with pytest.raises(NotFoundError, match="No API token of carol is labelled or starts with 'ci'"):
        tokens.revoke("ci", user="carol")
    with pytest.raises(NotFoundError) as missing:
        tokens.revoke(b[:20] + "x" * 27)  # a mistyped token is not repeated whole in the message
    assert b[:20] not in str(missing.value) and "mdp_" in str(missing.value)

    assert tokens.revoke("ci", user="alice").prefix == a_info.prefix
    assert tokens.revoke(b).label == "ci"  # the whole token
    assert tokens.revoke(f"  {c_info.shown} ").label == "laptop"  # as `ls` shows it
    assert tokens.list() == []
    assert tokens.verify(a) is None and tokens.verify(b) is None


def test_bad_input_is_refused_before_anything_is_written(redis_client: redis.Redis) -> None:
    tokens = store(redis_client)
    with pytest.raises(InvalidInputError, match="Label 'two words' must be 1-64 letters"):
        tokens.create("alice", Role.ADMIN, label="two words")
    with pytest.raises(InvalidInputError, match="must be 1-128 characters"):
        tokens.create("a:b", Role.ADMIN)
    with pytest.raises(InvalidInputError, match="expiry must be between 1 second"):
        tokens.create("alice", Role.ADMIN, expires_s=0)
    with pytest.raises(PermissionDeniedError, match="alice is a viewer, so pick viewer"):
        tokens.create("alice", Role.ADMIN, max_role=Role.VIEWER)
    assert everything_in(redis_client) == ""


@pytest.mark.parametrize("token", ["", "mdp_", "Bearer mdp_x", "mdp_" + "a" * 42, "mdp_" + "a" * 44,
                                   "mdp_" + "*" * 43, "x" * 10_000], ids=range(7))
def test_malformed_or_unknown_tokens_fail_quietly(redis_client: redis.Redis, token: str) -> None:
    tokens = store(redis_client)
    assert tokens.verify(token) is None
    assert tokens.verify("mdp_" + "a" * 43) is None  # well formed, unknown


def test_an_expired_token_fails_and_leaves_the_list(redis_client: redis.Redis) -> None:
    tokens = store(redis_client)
    token, _ = tokens.create("alice", Role.ADMIN, label="short", expires_s=1)
    assert tokens.verify(token) is not None
    wait_until(lambda: tokens.verify(token) is None, timeout=3, what="the token to expire")
    assert tokens.list() == []
    assert redis_client.hlen(KEYS.api_tokens) == 0  # forgotten by the listing
    tokens.create("alice", Role.ADMIN, label="short")  # its label is free again


def test_a_revocation_counts_at_once_on_another_worker(redis_client: redis.Redis, redis_url: str) -> None:
    here = store(redis_client)
    there = store(redis.Redis.from_url(redis_url))
    token, _ = here.create("alice", Role.ADMIN, label="ci")
    assert there.verify(token) is not None
    here.revoke("ci")
    assert there.verify(token) is None


def test_last_use_is_written_at_most_once_a_minute(redis_client: redis.Redis,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = store(redis_client)
    token, _ = tokens.create("alice", Role.ADMIN, label="ci", expires_s=600)
    first = tokens.verify(token)
    stored = redis_client.get(KEYS.api_token(token))
    assert first is not None and json.loads(stored)["last_used_at"] == first.last_used_at
    second = tokens.verify(token)
    assert second is not None and second.last_used_at == first.last_used_at
    assert redis_client.get(KEYS.api_token(token)) == stored  # no write
    monkeypatch.setattr(tokens_module, "LAST_USED_EVERY_S", 0.0)
    third = tokens.verify(token)
    assert third is not None and third.last_used_at is not None and third.last_used_at > first.last_used_at
    assert json.loads(redis_client.hget(KEYS.api_tokens, token_digest(token)))["last_used_at"] == third.last_used_at
    assert 590 < redis_client.ttl(KEYS.api_token(token)) <= 600  # the write kept the expiry

    tokens.revoke("ci")
    tokens._touched(token_digest(token), third)  # a last use racing the revocation does not bring it back
    assert everything_in(redis_client) == ""


def test_a_token_is_capped_by_its_users_current_role(redis_client: redis.Redis, users: Path) -> None:
    tokens = store(redis_client, users)
    token, _ = tokens.create("alice", Role.ADMIN, label="ci")
    viewer_token, _ = tokens.create("alice", Role.VIEWER, label="read")
    assert tokens.verify(token).role is Role.ADMIN  # type: ignore[union-attr]
    write_users(users, alice="viewer", bob="viewer")
    capped = tokens.verify(token)
    assert capped is not None and capped.role is Role.VIEWER
    assert tokens.list("alice")[0].role is Role.ADMIN  # what it was made with, still listed as such
    write_users(users, alice="admin", bob="viewer")
    assert tokens.verify(token).role is Role.ADMIN  # type: ignore[union-attr]
    assert tokens.verify(viewer_token).role is Role.VIEWER  # type: ignore[union-attr]
    write_users(users, bob="viewer")  # alice removed
    assert tokens.verify(token) is None and tokens.verify(viewer_token) is None
    assert store(redis_client).verify(token) is not None  # with no users file the token's own role counts


def test_create_respects_the_users_file(redis_client: redis.Redis, users: Path) -> None:
    tokens = store(redis_client, users)
    with pytest.raises(PermissionDeniedError, match="bob is a viewer in the users file, so pick viewer"):
        tokens.create("bob", Role.ADMIN)
    with pytest.raises(NotFoundError, match="'carol' is not in the users file"):
        tokens.create("carol", Role.VIEWER)
    assert tokens.create("bob", Role.VIEWER)[1].role is Role.VIEWER


def test_tokens_from_settings_uses_the_users_file(redis_client: redis.Redis, redis_url: str, users: Path,
                                                  tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path, key_prefix="md", auth_file=users)
    tokens = tokens_from_settings(settings, redis_client)
    assert tokens.users is not None and tokens.users.path == users and tokens.keys == KEYS
    with pytest.raises(PermissionDeniedError):
        tokens.create("bob", Role.ADMIN)
    assert tokens_from_settings(Settings(redis_url=redis_url, data_dir=tmp_path), redis_client).users is None


def test_wrong_tokens_pause_their_source_only(redis_client: redis.Redis) -> None:
    throttle = TokenThrottle(redis_client, KEYS, max_failures=3, pause_s=90)
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
    with pytest.raises(TooManyTokenAttemptsError, match="try again in 2 minutes") as paused:
        throttle.check("10.0.0.1")
    assert 0 < paused.value.retry_after_s <= 90
    assert isinstance(paused.value, PermissionDeniedError)
    throttle.check("10.0.0.2")
    assert "10.0.0.1" not in everything_in(redis_client)  # the address is hashed in the key
    assert 0 < redis_client.ttl(KEYS.token_failures("10.0.0.1")) <= 90
    defaults = store(redis_client).throttle
    assert (defaults.max_failures, defaults.pause_s) == (20, 300)


# ---- the page's panel ----------------------------------------------------------------------------------


@pytest.fixture
def panel(redis_client: redis.Redis) -> TokenPanel:
    auth = Authenticator(users=None, sessions=None, header="x-user", header_admins=frozenset({"alice"}))
    return TokenPanel(store(redis_client), Access(auth))


def as_user(name: str) -> Any:
    return Req({"x-user": name})


def test_the_panel_makes_shows_once_lists_and_revokes_own_tokens(panel: TokenPanel,
                                                                 redis_client: redis.Redis) -> None:
    status, secret, listing = panel.create_token("ci", "admin", "90 days", as_user("alice"))
    token = secret["value"]
    assert TOKEN_RE.fullmatch(token) and secret["visible"] is True
    assert "Created admin token ci (mdp_" in status and "it expires" in status
    assert ">ci</td>" in listing and token not in listing and token not in status
    assert token_digest(token) in everything_in(redis_client) and token not in everything_in(redis_client)

    status, secret, listing = panel.create_token("", "viewer", "never", as_user("bob"))
    assert "Created viewer token token-" in status and "never expires" in status
    assert "ci" not in listing  # only bob's tokens
    status, *_ = panel.create_token("more", "admin", "30 days", as_user("bob"))
    assert 'role="alert"' in status and "bob is a viewer, so pick viewer" in status

    status, *_ = panel.revoke_token("ci", as_user("bob"))
    assert "No API token of bob is labelled or starts with &#x27;ci&#x27;" in status  # not alice's
    status, secret, listing = panel.revoke_token(" ci ", as_user("alice"))
    assert "Revoked ci (mdp_" in status and secret["visible"] is False
    assert "You have no API tokens yet." in listing
    assert panel.tokens.verify(token) is None
    assert panel.show_tokens(as_user("alice")) == ("", "<p>You have no API tokens yet.</p>")


def test_the_panel_refuses_bad_input_in_its_status_line(panel: TokenPanel) -> None:
    status, *_ = panel.create_token("ci", "root", "90 days", as_user("alice"))
    assert "unknown role &#x27;root&#x27;" in status
    status, *_ = panel.create_token("ci", "viewer", "forever", as_user("alice"))
    assert "Pick an expiry: 30 days, 90 days, 1 year, never." in status
    status, *_ = panel.revoke_token("  ", as_user("alice"))
    assert "Type the label or the prefix" in status
    status, *_ = panel.create_token("ci", "viewer", "never", Req())
    assert "You are not signed in" in status
    assert panel.tokens.list() == []


def test_the_panel_is_for_signed_in_users_only(redis_client: redis.Redis) -> None:
    open_panel = TokenPanel(store(redis_client), Access(None))
    status, *_ = open_panel.create_token("ci", "admin", "never", Req())
    assert "Sign-in is off here" in status
    assert open_panel.tokens.list() == []


def test_render_tokens_escapes_and_never_shows_secrets(redis_client: redis.Redis) -> None:
    tokens = store(redis_client)
    token, _ = tokens.create("alice", Role.ADMIN, label="a.b-c_d", expires_s=60)
    html = render_tokens(tokens.list())
    assert "a.b-c_d" in html and "never</td>" in html and token not in html  # last used: never
    assert expiry_seconds("1 year") == 365 * 86400 and expiry_seconds("never") is None
    with pytest.raises(InvalidInputError):
        expiry_seconds(None)


def test_the_page_has_the_panel_behind_sign_in(ui_settings: Settings, users_file: Path) -> None:
    from app.web.gradio_ui import build_ui

    settings = ui_settings.model_copy(update={"auth_file": users_file})
    with Controller(settings) as controller:
        auth = Authenticator(users=UsersFile(users_file), sessions=None)
        blocks = build_ui(controller, auth=auth)
        config = blocks.get_config_file()
    components = {c.get("props", {}).get("elem_id"): c for c in config["components"]}
    assert components["md-tokens"]["props"]["visible"] is False  # shown by the page's load when signed in
    assert components["md-token-secret"]["props"]["label"] == SECRET_LABEL


@pytest.mark.browser
@pytest.mark.slow
def test_a_viewer_makes_and_revokes_a_token_in_the_page(ui_settings: Settings, users_file: Path,
                                                        serve_ui: Any, browser: Any, artifacts: Path) -> None:
    from tests.ui.conftest import PASSWORDS

    server, controller = serve_ui(ui_settings.model_copy(update={"auth_file": users_file}))
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(server.url + "/")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", PASSWORDS["bob"])
    page.click("button[type=submit]")
    page.wait_for_selector("#md-tokens")
    page.click("#md-tokens button:has-text('API tokens')")
    page.wait_for_selector("#md-token-list :text('You have no API tokens yet.')")
    page.fill("#md-token-label textarea, #md-token-label input", "laptop")
    page.click("#md-token-create")
    page.wait_for_selector("#md-token-status [role=status]")
    token = page.input_value("#md-token-secret input, #md-token-secret textarea")
    assert TOKEN_RE.fullmatch(token)
    assert "Created viewer token laptop" in page.inner_text("#md-token-status")
    assert "laptop" in page.inner_text("#md-token-list") and token not in page.inner_text("#md-token-list")
    info = tokens_from_settings(controller.settings, controller.redis).verify(token)
    assert info is not None and (info.user, info.role) == ("bob", Role.VIEWER)
    page.screenshot(path=str(artifacts / "token-created.png"), full_page=True)
    page.fill("#md-token-target textarea, #md-token-target input", "laptop")
    page.click("#md-token-revoke")
    page.wait_for_selector("#md-token-status :text('Revoked laptop')")
    assert "You have no API tokens yet." in page.inner_text("#md-token-list")
    assert tokens_from_settings(controller.settings, controller.redis).verify(token) is None
    context.close()
