"""Every /api/v1 route and its errors on a real UI worker and a real Redis, sign-in off (everyone is an admin)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.core.errors import InvalidInputError
from app.core.records import ModelRecord, Status
from tests.api.conftest import Api


def error(response: httpx.Response, status: int, code: str) -> str:
    """The message of an error answer, after checking its status, code and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert message and "Traceback" not in message
    return str(message)


def ready(api: Api, name: str, *, size: int = 1000, revision: str | None = None, **fields: Any) -> None:
    """Write a ready record straight into Redis (as a finished download would) and wait for the replica."""
    record = ModelRecord(name=name, repo_id=name.partition("@")[0], revision=revision, status=Status.READY,
                         commit="a" * 40, size_bytes=size, bytes_done=size, bytes_total=size, **fields)
    event = api.controller.store.force(name, record, None)
    assert api.controller.replica.wait_for(int(event["v"]), timeout=5)


@pytest.fixture
def client(api: Api) -> Iterator[httpx.Client]:
    with api.client() as c:
        yield c


def test_download_read_act_remove(api: Api, client: httpx.Client) -> None:
    assert client.get("/models").json() == {"models": []}
    queued = client.post("/models", json={"model": "org/alpha@v1", "include": ["*.safetensors", "*.json"],
                                          "exclude": ["*.bin"]})
    assert queued.status_code == 202
    answer = queued.json()
    assert set(answer) == {"name", "job_id", "message", "changed", "version"}
    assert (answer["name"], answer["changed"], answer["message"]) == ("org/alpha@v1", True, "Queued org/alpha@v1.")
    again = client.post("/models", json={"model": "org/alpha", "revision": "v1"}).json()
    assert (again["job_id"], again["changed"]) == (answer["job_id"], False)
    assert again["message"] == "org/alpha@v1 is already queued."

    record = client.get("/models/org/alpha@v1").json()
    assert record == api.controller.get_model("org/alpha@v1")
    assert (record["status"], record["allow_patterns"], record["ignore_patterns"]) == (
        "queued", ["*.safetensors", "*.json"], ["*.bin"])
    assert client.get("/models/org/alpha%40v1").json() == record
    assert client.get("/models").json() == {"models": api.controller.fetch_models()}

    paused = client.post("/models/org/alpha@v1/pause").json()
    assert (paused["message"], paused["job_id"]) == ("Paused org/alpha@v1.", answer["job_id"])
    again_paused = client.post("/models/org/alpha@v1/pause")
    assert error(again_paused, 409, "conflict") == "org/alpha@v1 is already paused; resume it to go on."
    resumed = client.post("/models/org/alpha@v1/resume").json()
    assert resumed["changed"] and resumed["job_id"] != answer["job_id"]
    assert client.post("/models/org/alpha@v1/cancel").json()["message"] == "Cancelled org/alpha@v1."
    assert client.post("/models/org/alpha@v1/retry").json()["message"] == "Queued org/alpha@v1 again."
    removed = client.delete("/models/org/alpha@v1")
    assert removed.status_code == 202
    assert removed.json()["message"] == "Removing org/alpha@v1…" and removed.json()["freed_bytes"] == 0
    assert [m["status"] for m in client.get("/models").json()["models"]] == ["removing"]
    assert client.delete("/models/org/alpha@v1").json()["changed"] is False

    logs = client.get("/logs").json()["logs"]
    assert logs == api.controller.get_logs()[-100:] and logs[0].endswith("queued download of org/alpha@v1")
    assert client.get("/logs", params={"n": 2}).json()["logs"] == api.controller.get_logs()[-2:]


def test_lifecycle_actions_and_prune(api: Api, client: httpx.Client) -> None:
    ready(api, "org/kept", size=5000, revision="main")
    ready(api, "org/tagged@v1.0", size=10, revision="v1.0", ref_kind="tag")
    pinned = client.post("/models/org/kept/pin").json()
    assert pinned["changed"] and pinned["message"].startswith("Pinned org/kept")
    assert client.post("/models/org/kept/pin").json() == {**pinned, "changed": False,
                                                          "message": "org/kept is already pinned."}
    assert client.post("/models/org/kept/unpin").json()["message"].startswith("Unpinned org/kept")
    checked = client.post("/models/org/kept/check")
    assert checked.status_code == 202 and checked.json()["job_id"]
    message = error(client.post("/models/org/tagged@v1.0/check"), 409, "conflict")
    assert "a tag that never moves" in message
    assert client.post("/updates/check").json()["message"].startswith("Checking every model that follows a branch")
    verified = client.post("/models/org/kept/verify").json()
    assert verified["message"] == "Verifying org/kept; the result appears in the log."
    updating = client.post("/models/org/kept/update").json()
    assert updating["changed"] and updating["message"].startswith("Updating org/kept from aaaaaaa")
    assert "only ready models can be verified" in error(client.post("/models/org/kept/verify"), 409, "conflict")

    freed = client.delete("/models/org/tagged@v1.0").json()
    assert freed["freed_bytes"] == 10
    pruned = client.post("/prune", json={"dry_run": True})
    assert pruned.status_code == 200
    assert pruned.json() == {"dry_run": True, "removing": [], "victims": [], "message": (
        "Nothing to prune: the models are within their quota and the volume under its low watermark.")}
    assert client.post("/prune").json()["dry_run"] is False


def test_filters_and_reads(api: Api, client: httpx.Client) -> None:
    ready(api, "org/Big-Model")
    ready(api, "other/small")
    client.post("/models", json={"model": "org/queued-one"})
    names = lambda **params: [m["name"] for m in client.get("/models", params=params).json()["models"]]  # noqa: E731
    assert names() == ["org/Big-Model", "org/queued-one", "other/small"]
    assert names(status="ready") == ["org/Big-Model", "other/small"]
    assert names(q="big") == ["org/Big-Model"]
    assert names(status="queued", q="org/") == ["org/queued-one"]
    assert "status" in error(client.get("/models", params={"status": "sleeping"}), 400, "invalid_input")
    version = client.post("/models", json={"model": "org/new"}).json()["version"]
    assert client.get("/models/org/new", params={"version": version}).json()["status"] == "queued"
    began = time.monotonic()
    assert client.get("/models", params={"version": version + 1000}).status_code == 200  # gives up after 2 s
    assert 1.9 < time.monotonic() - began < 5


def test_status_me_openapi_docs(api: Api, client: httpx.Client) -> None:
    status = client.get("/status").json()
    assert status["redis_version"] and status["healthy"] is False  # no RQ worker runs in this test
    assert any("no live worker on the downloads queue" in p for p in status["problems"])
    assert set(status) >= {"queues", "workers", "models_by_status", "volume", "room", "transfers", "state_version"}
    assert client.get("/me").json() == {"user": "anonymous", "role": "admin", "via": "open"}
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Model Depot API" and spec["servers"] == [{"url": "/api/v1"}]
    assert {"/models", "/models/{org}/{name}", "/models/{org}/{name}/progress", "/models/{org}/{name}/{action}",
            "/updates/check", "/prune", "/logs", "/events", "/status", "/me", "/tokens",
            "/tokens/{label_or_prefix}"} <= set(spec["paths"])
    download = spec["paths"]["/models"]["post"]
    assert download["responses"]["202"] and download["responses"]["400"]
    assert spec["components"]["schemas"]["DownloadRequest"]["additionalProperties"] is False
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
    assert httpx.get(api.server.url + "/healthz").json() == {"ok": True}  # the rest of the app is untouched


def test_bad_names_get_the_page_s_message(api: Api, client: httpx.Client) -> None:
    for bad in ["not a name", "../x", "org/na me", "a/b/c", "org/name@", "org/name@../../etc"]:
        with pytest.raises(InvalidInputError) as refused:
            api.controller.download_model(bad)
        message = error(client.post("/models", json={"model": bad}), 400, "invalid_input")
        assert message == str(refused.value)
        gradio = httpx.post(api.server.url + "/gradio_api/run/download_model", json={"data": [bad, None, None, None]})
        assert gradio.json()["error"] == message  # the page's own API says the same
    assert "'..'" in error(client.get("/models/org/%2E%2E"), 400, "invalid_input")
    assert "not valid" in error(client.post("/models/org/na%20me/cancel"), 400, "invalid_input")
    assert api.controller.fetch_models() == []


def test_missing_and_conflicting_models(client: httpx.Client) -> None:
    assert "org/missing is not in the list" in error(client.get("/models/org/missing"), 404, "not_found")
    assert "org/missing is not in the list" in error(client.delete("/models/org/missing"), 404, "not_found")
    assert "not in the list" in error(client.post("/models/org/missing/retry"), 404, "not_found")
    assert "not in the list" in error(client.get("/models/org/missing/progress"), 404, "not_found")
    client.post("/models", json={"model": "org/busy"})
    assert "only failed or cancelled downloads can be retried" in error(
        client.post("/models/org/busy/retry"), 409, "conflict")
    assert "only paused downloads can be resumed" in error(client.post("/models/org/busy/resume"), 409, "conflict")


def test_routes_and_methods_that_do_not_exist(api: Api, client: httpx.Client) -> None:
    assert "No such route: GET '/api/v1/nothing'" in error(client.get("/nothing"), 404, "not_found")
    assert "No such route" in error(client.get(""), 404, "not_found")
    assert "No such route" in error(httpx.get(api.server.url + "/api/v1"), 404, "not_found")
    assert r"'/api/v1/models/org/a\nb'" in error(client.get("/models/org/a%0Ab"), 404, "not_found")
    assert len(error(client.get("/models/org/" + "x" * 5000 + "%0Ay"), 404, "not_found")) < 300
    assert "does not take PUT" in error(client.put("/models", json={}), 405, "method_not_allowed")
    assert "does not take POST" in error(client.post("/models/org/name"), 405, "method_not_allowed")
    assert "'cancel', 'retry'" in error(client.post("/models/org/name/explode"), 400, "invalid_input")


@pytest.mark.parametrize(("body", "needle"), [
    ({"model": "org/x", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
    ({}, "body.model: Field required"),
    ({"model": 12}, "body.model: Input should be a valid string"),
    ({"model": "org/x", "include": "*.json"}, "body.include: Input should be a valid list"),
    ([1, 2], "Input should be a valid dictionary"),
])
def test_bodies_that_do_not_fit(client: httpx.Client, body: object, needle: str) -> None:
    assert needle in error(client.post("/models", json=body), 400, "invalid_input")


def test_body_limits_and_content_types(api: Api, client: httpx.Client) -> None:
    assert "not valid JSON" in error(client.post("/models", content=b'{"model": ', headers=JSON), 400, "invalid_input")
    big = json.dumps({"model": "org/x", "include": ["a" * 100] * 700}).encode()
    assert len(big) > 64 * 1024
    assert "over 64 KiB" in error(client.post("/models", content=big, headers=JSON), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "org/x", "include": ['
        for _ in range(2000):
            yield b'"' + b"b" * 60 + b'",'
        yield b'"c"]}'

    assert "over 64 KiB" in error(client.post("/models", content=chunks(), headers=JSON), 413, "too_large")
    form = client.post("/models", data={"model": "org/x"})
    assert "Content-Type: application/json" in error(form, 415, "unsupported_media_type")
    text = client.post("/models", content=b'{"model": "org/x"}', headers={"Content-Type": "text/plain"})
    error(text, 415, "unsupported_media_type")
    empty_form = client.post("/models/org/x/cancel", headers={"Content-Type": "application/x-www-form-urlencoded"})
    error(empty_form, 415, "unsupported_media_type")  # what a cross-site HTML form sends
    assert client.post("/models", content=b'{"model": "org/x"}',
                       headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 202
    assert api.controller.get_model("org/x")["allow_patterns"] is None


def test_unexpected_errors_are_logged_not_shown(api: Api, client: httpx.Client, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals at /srv/x")

    monkeypatch.setattr(api.controller, "fetch_models", explode)
    monkeypatch.setattr(api.controller, "pin_model", explode)
    for response in (client.get("/models"), client.post("/models/org/x/pin")):
        message = error(response, 500, "internal")
        assert "secret internals" not in response.text and "it was logged" in message
    assert caplog.text.count("secret internals at /srv/x") >= 2 and "Traceback" in caplog.text


def test_cors_is_off_unless_origins_are_listed(start_api: Callable[..., Api]) -> None:
    closed = start_api()
    preflight = {"Origin": "https://tools.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    answer = httpx.options(closed.url + "/models", headers=preflight)
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in httpx.get(closed.url + "/models", headers=preflight).headers
    opened = start_api(cors_origins="https://tools.example, https://other.example")
    answer = httpx.options(opened.url + "/models", headers=preflight)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://tools.example"
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()
    assert httpx.get(opened.url + "/models", headers={"Origin": "https://other.example"}).headers[
        "access-control-allow-origin"] == "https://other.example"
    assert "access-control-allow-origin" not in httpx.get(opened.url + "/models",
                                                          headers={"Origin": "https://evil.example"}).headers
    assert "access-control-allow-origin" not in httpx.get(opened.server.url + "/healthz",
                                                          headers={"Origin": "https://tools.example"}).headers


JSON = {"Content-Type": "application/json"}
