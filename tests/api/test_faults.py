"""Faults and abuse through the API: Redis stopped (503, reads go on from the replica), and the abuse corpus of
tests/faults/test_abuse.py as bodies and paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.core.errors import InvalidInputError
from app.web.auth.tokens import TokenStore
from tests.api.conftest import Api, bearer, make_token
from tests.api.test_routes import error
from tests.faults.test_abuse import NASTY, names, patterns
from tests.redis_server import RedisServer
from tests.support.waiting import wait_until


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_redis_stopped_is_503_and_reads_go_on(start_api: Callable[..., Api], redis_server: RedisServer,
                                              tokens: TokenStore) -> None:
    api = start_api(redis_retry_s=1.0)  # writes are retried this long (a failover's worth), then answered 503
    token = make_token(tokens, "alice", "admin")
    httpx.post(api.url + "/models", json={"model": "org/kept"})
    redis_server.stop()
    try:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            for method, path, body in [("POST", "/models", {"model": "org/new"}), ("DELETE", "/models/org/kept", None),
                                       ("POST", "/models/org/kept/cancel", None), ("POST", "/updates/check", None)]:
                response = client.request(method, path, json=body)
                assert "Redis (the shared state) is unreachable" in error(response, 503, "unavailable"), path
            assert "unreachable" in error(client.get("/events"), 503, "unavailable")
            assert "unreachable" in error(client.get("/me", headers=bearer(token)), 503, "unavailable")
            assert [m["name"] for m in client.get("/models").json()["models"]] == ["org/kept"]  # the replica
            assert client.get("/models/org/kept").json()["status"] == "queued"
            status = client.get("/status").json()
            assert status["healthy"] is False and status["redis_error"] and status["problems"]
    finally:
        redis_server.start()
    wait_until(lambda: httpx.post(api.url + "/models", json={"model": "org/new"}).status_code == 202, 20,
               "writes to work again")


@pytest.fixture
def tokens(settings_env, redis_client) -> TokenStore:
    from app.web.auth.tokens import tokens_from_settings

    return tokens_from_settings(settings_env, redis_client)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, revision=st.one_of(st.none(), st.sampled_from(NASTY), st.text(max_size=20)),
       include=st.one_of(st.none(), patterns))
@example(name=" org/clean \n", revision=None, include=None)
@example(name="org/pinned@v1.0", revision=None, include=None)
@example(name="org/x", revision="../../etc", include=None)
def test_the_abuse_corpus_as_bodies(api: Api, data_dir: Path, name: str, revision: str | None,
                                    include: list[str] | None) -> None:
    before, queued = _listing(data_dir.parent), api.controller.jobs.downloads.job_ids
    names_before = {m["name"] for m in api.controller.fetch_models()}
    response = httpx.post(api.url + "/models", json={"model": name, "revision": revision, "include": include},
                          timeout=10)
    if response.status_code == 202:
        answer = response.json()
        record = api.controller.get_model(answer["name"])
        assert record["job_id"] == answer["job_id"] and record["status"] == "queued"
        repo_id = record["repo_id"]
        assert ".." not in repo_id and repo_id.isascii() and repo_id.count("/") == 1
        assert {m["name"] for m in api.controller.fetch_models()} <= names_before | {answer["name"]}
    else:
        message = error(response, 400, "invalid_input")
        assert len(message) < 400
        with pytest.raises(InvalidInputError) as refused:
            api.controller.download_model(name, revision, include)
        assert message == str(refused.value)  # the page's message, word for word
        assert api.controller.jobs.downloads.job_ids == queued
        assert {m["name"] for m in api.controller.fetch_models()} == names_before
    assert _listing(data_dir.parent) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.sampled_from(NASTY), names), method=st.sampled_from(["GET", "DELETE", "POST"]))
def test_the_abuse_corpus_as_paths(api: Api, data_dir: Path, name: str, method: str) -> None:
    before = _listing(data_dir.parent)
    suffix = "/cancel" if method == "POST" else ""
    path = "/models/" + quote(name, safe="") + suffix
    response = httpx.request(method, api.url + path, timeout=10)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"]["message"]
    assert len(body["error"]["message"]) < 600
    assert api.controller.fetch_models() == []
    assert _listing(data_dir.parent) == before
