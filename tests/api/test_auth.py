"""Who may call the API: tokens, the page's session cookie and SSO header, roles, CSRF, the wrong-token throttle,
the tokens routes; and that a token shows up nowhere but in the answer that made it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from app.web.auth.sessions import COOKIE_NAME
from app.web.auth.tokens import TOKEN_MAX_FAILURES, TokenStore
from app.web.auth.users import make_entry
from tests.api.conftest import Api, bearer, login, make_token
from tests.api.test_routes import error
from tests.faults.test_abuse import _dump_redis
from tests.ui.conftest import PASSWORDS

CHANGES = [("POST", "/models", {"model": "org/x"}), ("DELETE", "/models/org/x", None),
           *(("POST", f"/models/org/x/{a}", None) for a in ("cancel", "retry", "verify", "pause", "resume",
                                                              "update", "pin", "unpin", "check")),
           ("POST", "/updates/check", None), ("POST", "/prune", {"dry_run": True})]


def wrong_token(n: int) -> str:
    return "mdp_" + f"{n:043d}"


def test_sign_in_is_needed(auth_api: Api) -> None:
    response = httpx.get(auth_api.url + "/models")
    assert "not signed in" in error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "not signed in" in error(httpx.get(auth_api.url + "/me", headers={"Authorization": "Basic YTpi"}),
                                    401, "unauthorized")  # a proxy's sign-in is not a token
    assert "needs the token" in error(httpx.get(auth_api.url + "/me", headers={"Authorization": "Bearer"}),
                                      401, "unauthorized")
    assert "wrong, expired or revoked" in error(httpx.get(auth_api.url + "/me", headers=bearer("mdp_nope")),
                                                401, "unauthorized")
    assert httpx.get(auth_api.server.url + "/healthz").status_code == 200


def test_a_viewer_reads_and_changes_nothing(auth_api: Api, tokens: TokenStore) -> None:
    auth_api.controller.download_model("org/x")
    viewer = bearer(make_token(tokens, "bob", "viewer"))
    cookie = {COOKIE_NAME: login(auth_api.server.url, "bob")}
    with httpx.Client(base_url=auth_api.url, headers={"Origin": auth_api.origin}) as session:
        for headers, cookies in ((viewer, None), ({}, cookie)):
            assert session.get("/models", headers=headers, cookies=cookies).json()["models"][0]["name"] == "org/x"
            assert session.get("/me", headers=headers, cookies=cookies).json()["role"] == "viewer"
            for method, path, body in CHANGES:
                response = session.request(method, path, json=body, headers=headers, cookies=cookies)
                assert "bob is a viewer and cannot" in error(response, 403, "forbidden"), (method, path)
    assert [m["status"] for m in auth_api.controller.fetch_models()] == ["queued"]
    assert not any("bob" in line for line in auth_api.controller.get_logs())


def test_an_admin_token_needs_no_origin_and_is_recorded(auth_api: Api, tokens: TokenStore) -> None:
    admin = bearer(make_token(tokens, "alice", "admin", label="ci"))
    me = httpx.get(auth_api.url + "/me", headers=admin).json()
    assert me == {"user": "alice", "role": "admin", "via": "token"}
    queued = httpx.post(auth_api.url + "/models", json={"model": "org/y"}, headers=admin)
    assert queued.status_code == 202
    cross_site = httpx.post(auth_api.url + "/models/org/y/pause", headers={**admin, "Origin": "https://evil.example"})
    assert cross_site.status_code == 202  # a bearer token is never sent by a browser on its own
    assert auth_api.controller.get_model("org/y")["requested_by"] == "alice"
    assert any(line.endswith("alice: queued download of org/y") for line in auth_api.controller.get_logs())


def test_cookie_changes_must_come_from_the_page(auth_api: Api) -> None:
    cookies = {COOKIE_NAME: login(auth_api.server.url, "alice")}
    url = auth_api.url + "/models"
    body = {"model": "org/z"}
    assert httpx.get(url, cookies=cookies).status_code == 200  # reads need no origin
    assert "Origin or Referer" in error(httpx.post(url, json=body, cookies=cookies), 403, "forbidden")
    evil = httpx.post(url, json=body, cookies=cookies, headers={"Origin": "https://evil.example"})
    assert "another site" in error(evil, 403, "forbidden")
    assert "another site" in error(httpx.post(url, json=body, cookies=cookies,
                                              headers={"Referer": "https://evil.example/page"}), 403, "forbidden")
    assert "another site" in error(httpx.post(url, json=body, cookies=cookies, headers={"Origin": "null"}),
                                   403, "forbidden")
    assert auth_api.controller.fetch_models() == []
    assert httpx.post(url, json=body, cookies=cookies, headers={"Origin": auth_api.origin}).status_code == 202
    referer = httpx.delete(url + "/org/z", cookies=cookies, headers={"Referer": auth_api.origin + "/?x=1"})
    assert referer.status_code == 202
    proxied = {"Host": "10.0.0.7:7860", "X-Forwarded-Host": "depot.example", "Origin": "https://depot.example"}
    assert httpx.post(url + "/org/z/cancel", cookies=cookies, headers=proxied).status_code == 409  # past the check
    assert httpx.get(auth_api.url + "/me", cookies=cookies).json() == {"user": "alice", "role": "admin",
                                                                      "via": "session"}


def test_sso_header_callers(start_api: Callable[..., Api]) -> None:
    api = start_api(auth_header="X-Forwarded-User", auth_admins="carol")
    carol, dave = {"X-Forwarded-User": "carol"}, {"X-Forwarded-User": "dave"}
    assert httpx.get(api.url + "/me", headers=carol).json() == {"user": "carol", "role": "admin", "via": "header"}
    assert httpx.get(api.url + "/me", headers=dave).json()["role"] == "viewer"
    error(httpx.post(api.url + "/models", json={"model": "org/h"}, headers=carol), 403, "forbidden")
    assert httpx.post(api.url + "/models", json={"model": "org/h"},
                      headers={**carol, "Origin": api.origin}).status_code == 202
    assert "dave is a viewer" in error(httpx.post(api.url + "/models/org/h/cancel",
                                                  headers={**dave, "Origin": api.origin}), 403, "forbidden")


def test_open_api_refuses_only_cross_site_changes(api: Api) -> None:
    url = api.url + "/models"
    assert httpx.get(url, headers={"Authorization": "Basic YTpi"}).status_code == 200  # behind a proxy's sign-in
    assert "another site" in error(httpx.post(url, json={"model": "org/o"}, headers={"Origin": "https://evil.example"}),
                                   403, "forbidden")
    assert httpx.post(url, json={"model": "org/o"}, headers={"Origin": api.origin}).status_code == 202
    assert httpx.post(url + "/org/o/cancel").status_code == 202  # curl sends no Origin


def test_a_token_counts_at_most_as_its_user(auth_api: Api, tokens: TokenStore, users_file: Path) -> None:
    admin = bearer(make_token(tokens, "alice", "admin"))
    assert httpx.get(auth_api.url + "/me", headers=admin).json()["role"] == "admin"
    users_file.write_text(make_entry("alice", "viewer", PASSWORDS["alice"]) + "\n")
    assert httpx.get(auth_api.url + "/me", headers=admin).json()["role"] == "viewer"
    error(httpx.post(auth_api.url + "/models", json={"model": "org/x"}, headers=admin), 403, "forbidden")
    users_file.write_text(make_entry("bob", "viewer", PASSWORDS["bob"]) + "\n# alice left\n")
    error(httpx.get(auth_api.url + "/me", headers=admin), 401, "unauthorized")


def test_an_expired_token_fails(auth_api: Api, tokens: TokenStore) -> None:
    short = bearer(make_token(tokens, "alice", "admin", expires_s=1))
    assert httpx.get(auth_api.url + "/me", headers=short).status_code == 200
    time.sleep(1.2)
    assert "expired" in error(httpx.get(auth_api.url + "/me", headers=short), 401, "unauthorized")


def test_wrong_tokens_are_throttled_per_address(auth_api: Api, tokens: TokenStore) -> None:
    good = bearer(make_token(tokens, "alice", "admin"))
    with httpx.Client(base_url=auth_api.url) as client:
        for n in range(TOKEN_MAX_FAILURES):
            error(client.get("/models", headers=bearer(wrong_token(n))), 401, "unauthorized")
        paused = client.get("/models", headers=bearer(wrong_token(999)))
        assert "Too many wrong API tokens" in error(paused, 429, "too_many_requests")
        assert 0 < int(paused.headers["retry-after"]) <= 300
        error(client.get("/models", headers=good), 429, "too_many_requests")  # the address is paused, not the token
        assert client.get("/models", cookies={COOKIE_NAME: login(auth_api.server.url, "alice")}).status_code == 200


def test_tokens_routes(auth_api: Api, tokens: TokenStore) -> None:
    alice = httpx.Client(base_url=auth_api.url, cookies={COOKIE_NAME: login(auth_api.server.url, "alice")},
                         headers={"Origin": auth_api.origin})
    bob = httpx.Client(base_url=auth_api.url, cookies={COOKIE_NAME: login(auth_api.server.url, "bob")},
                       headers={"Origin": auth_api.origin})
    with alice, bob:
        assert alice.get("/tokens").json() == {"tokens": []}
        made = alice.post("/tokens", json={"label": "ci", "expires_s": 3600})
        assert made.status_code == 201
        token = made.json()["token"]
        assert token.startswith("mdp_") and made.json()["role"] == "admin" and made.json()["prefix"] == token[4:12]
        listed = alice.get("/tokens").json()["tokens"]
        assert [t["label"] for t in listed] == ["ci"] and token not in str(listed)
        assert set(listed[0]) == {"label", "user", "role", "prefix", "created_at", "last_used_at", "expires_at"}
        assert httpx.get(auth_api.url + "/me", headers=bearer(token)).json()["via"] == "token"
        by_token = httpx.post(auth_api.url + "/tokens", json={"label": "more"}, headers=bearer(token))
        assert "cannot make tokens" in error(by_token, 403, "forbidden")
        assert [t["label"] for t in httpx.get(auth_api.url + "/tokens", headers=bearer(token)).json()["tokens"]] == [
            "ci"]
        assert "at most its user's" in error(bob.post("/tokens", json={"role": "admin"}), 403, "forbidden")
        assert bob.post("/tokens", json={"label": "ci"}).json()["role"] == "viewer"  # labels are per user
        assert "already has an API token labelled 'ci'" in error(alice.post("/tokens", json={"label": "ci"}),
                                                                 409, "conflict")
        assert "must be 1-64" in error(alice.post("/tokens", json={"label": "no spaces"}), 400, "invalid_input")
        assert "between 1 second" in error(alice.post("/tokens", json={"expires_s": -5}), 400, "invalid_input")
        assert "No API token of bob" in error(bob.delete("/tokens/" + token[4:12]), 404, "not_found")
        revoked = alice.delete("/tokens/ci")
        assert revoked.status_code == 200 and revoked.json()["label"] == "ci" and token not in revoked.text
        error(httpx.get(auth_api.url + "/me", headers=bearer(token)), 401, "unauthorized")
        assert [t.user for t in tokens.list()] == ["bob"]
        error(alice.delete("/tokens/ci", headers={"Origin": "https://evil.example"}), 403, "forbidden")


def test_tokens_need_a_signed_in_user(api: Api) -> None:
    assert "Sign-in is off" in error(httpx.post(api.url + "/tokens", json={}), 403, "forbidden")
    error(httpx.get(api.url + "/tokens"), 403, "forbidden")


def test_tokens_never_leak(auth_api: Api, tokens: TokenStore, redis_client: redis.Redis,
                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with httpx.Client(base_url=auth_api.url, cookies={COOKIE_NAME: login(auth_api.server.url, "alice")},
                      headers={"Origin": auth_api.origin}) as alice:
        token = alice.post("/tokens", json={"label": "leak"}).json()["token"]
        viewer = make_token(tokens, "bob", "viewer", label="bobs")
        for headers in (bearer(token), bearer(viewer)):
            for method, path, body in [("GET", "/models", None), ("GET", "/me", None), ("GET", "/tokens", None),
                                       ("GET", "/status", None), ("GET", "/logs", None), *CHANGES]:
                texts.append(alice.request(method, path, json=body, headers=headers).text)
        texts.append(alice.get("/tokens").text)
        texts.append(alice.delete("/tokens/leak").text)
        for headers in (bearer(token), bearer(token[:-1] + "x"), {"Authorization": token}):
            texts.append(alice.get("/models", headers=headers).text)
    texts.append(httpx.get(auth_api.server.url + "/metrics").text)
    everything = "\n".join(texts) + caplog.text + _dump_redis(redis_client)
    for secret in (token, viewer, token[4:30]):
        assert secret not in everything
