"""The stable API through gradio_client (and plain HTTP), on a real UI worker and a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from gradio_client.exceptions import AppError

from app.core.controller import Controller
from app.core.keys import Keys
from app.core.settings import Settings
from app.web.auth.sessions import COOKIE_NAME
from tests.support.waiting import wait_until
from tests.ui.conftest import PASSWORDS
from tests.ui.servers import ThreadServer

API_NAMES = {"/fetch_models", "/get_model", "/get_logs", "/download_model", "/remove_model",
             "/cancel_download", "/pause_download", "/resume_download", "/retry_download"}


def login(url: str, name: str) -> str:
    response = httpx.post(url + "/login", data={"username": name, "password": PASSWORDS[name], "next": "/"},
                          follow_redirects=False, timeout=10)
    assert response.status_code == 303, response.text
    return response.cookies[COOKIE_NAME]


def test_every_api_name_and_its_errors(ui_settings: Settings, serve_ui: Callable[..., Any],
                                       gradio_client: Callable[..., Any]) -> None:
    server, _ = serve_ui(ui_settings)
    client = gradio_client(server.url)
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) >= API_NAMES
    assert client.predict(api_name="/fetch_models") == []

    queued = client.predict("org/alpha@v1", None, "*.safetensors, *.json", "*.bin", api_name="/download_model")
    assert queued["changed"] is True and queued["name"] == "org/alpha@v1" and queued["job_id"]
    record = client.predict("org/alpha@v1", api_name="/get_model")
    assert (record["status"], record["revision"]) == ("queued", "v1")
    assert record["allow_patterns"] == ["*.safetensors", "*.json"] and record["ignore_patterns"] == ["*.bin"]
    again = client.predict("org/alpha", "v1", api_name="/download_model")
    assert again["changed"] is False and "already queued" in again["message"]

    paused = client.predict("org/alpha@v1", api_name="/pause_download")
    assert paused["message"] == "Paused org/alpha@v1." and paused["job_id"] == queued["job_id"]
    assert client.predict("org/alpha@v1", api_name="/get_model")["status"] == "paused"
    with pytest.raises(AppError, match="org/alpha@v1 is already paused; resume it to go on"):
        client.predict("org/alpha@v1", api_name="/pause_download")
    resumed = client.predict("org/alpha@v1", api_name="/resume_download")
    assert resumed["changed"] is True and resumed["job_id"] != queued["job_id"]
    assert client.predict("org/alpha@v1", api_name="/get_model")["job_id"] == resumed["job_id"]

    cancelled = client.predict("org/alpha@v1", api_name="/cancel_download")
    assert cancelled["message"] == "Cancelled org/alpha@v1."
    assert client.predict("org/alpha@v1", api_name="/get_model")["status"] == "cancelled"
    retried = client.predict("org/alpha@v1", api_name="/retry_download")
    assert retried["message"] == "Queued org/alpha@v1 again."
    removed = client.predict("org/alpha@v1", api_name="/remove_model")
    assert removed["message"] == "Removing org/alpha@v1…"
    assert [m["status"] for m in client.predict(api_name="/fetch_models")] == ["removing"]
    logs = client.predict(api_name="/get_logs")
    assert logs[0].endswith("modeldepot: queued download of org/alpha@v1")  # oldest first
    assert any("removing org/alpha@v1" in line for line in logs)

    with pytest.raises(AppError, match=r"not valid.*org/name or org/name@revision, e\.g\. Qwen/Qwen2\.5"):
        client.predict("not a name", api_name="/download_model")
    with pytest.raises(AppError, match="org/missing is not in the list"):
        client.predict("org/missing", api_name="/remove_model")
    with pytest.raises(AppError, match="only failed or cancelled downloads can be retried"):
        client.predict("org/alpha@v1", api_name="/retry_download")
    with pytest.raises(AppError, match="not downloading; nothing to cancel"):
        client.predict("org/alpha@v1", api_name="/cancel_download")
    with pytest.raises(AppError, match="org/alpha@v1 is removing; only queued or downloading downloads can be paused"):
        client.predict("org/alpha@v1", api_name="/pause_download")
    with pytest.raises(AppError, match="org/alpha@v1 is removing; only paused downloads can be resumed"):
        client.predict("org/alpha@v1", api_name="/resume_download")
    config = json.dumps(httpx.get(server.url + "/config", timeout=10).json())
    assert '"md-pause"' in config and '"md-resume"' in config  # the page's buttons


def test_one_request_api_for_curl(ui_settings: Settings, serve_ui: Callable[..., Any]) -> None:
    server, controller = serve_ui(ui_settings)
    controller.download_model("org/beta", requested_by="carol")
    response = httpx.post(server.url + "/gradio_api/run/fetch_models", json={"data": []}, timeout=10)
    assert response.status_code == 200
    assert response.json()["data"][0][0]["requested_by"] == "carol"
    bad = httpx.post(server.url + "/gradio_api/run/download_model", json={"data": ["nope", None, None, None]},
                     timeout=10)
    assert bad.status_code == 500 and "org/name" in bad.json()["error"]


def test_unexpected_errors_are_logged_not_shown(ui_settings: Settings, serve_ui: Callable[..., Any],
                                                gradio_client: Callable[..., Any],
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    server, controller = serve_ui(ui_settings)

    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals at /srv/x")

    monkeypatch.setattr(controller, "fetch_models", explode)
    with pytest.raises(AppError) as info:
        gradio_client(server.url).predict(api_name="/fetch_models")
    assert "secret internals" not in str(info.value) and "it was logged" in str(info.value)
    assert "secret internals" in caplog.text


def test_roles_with_the_users_file(ui_settings: Settings, users_file: Path, serve_ui: Callable[..., Any],
                                   gradio_client: Callable[..., Any]) -> None:
    settings = ui_settings.model_copy(update={"auth_file": users_file})
    server, _ = serve_ui(settings)
    assert httpx.get(server.url + "/", follow_redirects=False, timeout=10).headers["location"] == "/login?next=/"
    assert httpx.post(server.url + "/gradio_api/run/fetch_models", json={"data": []}, timeout=10).status_code == 401
    wrong = httpx.post(server.url + "/login", data={"username": "alice", "password": "x"}, timeout=10)
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text

    admin = gradio_client(server.url, headers={"Cookie": f"{COOKIE_NAME}={login(server.url, 'alice')}"})
    viewer = gradio_client(server.url, headers={"Cookie": f"{COOKIE_NAME}={login(server.url, 'bob')}"})
    assert admin.predict("org/gamma", api_name="/download_model")["changed"] is True
    with redis.Redis.from_url(settings.redis_url or "") as state:  # public (no cookie): the version of that write
        version = int(state.get(Keys(settings.key_prefix).version) or 0)
        assert httpx.get(server.url + "/api/state-version", timeout=10).json()["version"] == version > 0
    assert viewer.predict(api_name="/fetch_models")[0]["requested_by"] == "alice"
    assert viewer.predict(api_name="/get_logs")[-1].endswith("alice: queued download of org/gamma")
    for api_name, action in [("/download_model", "download models"), ("/remove_model", "remove models"),
                             ("/cancel_download", "cancel downloads"), ("/pause_download", "pause downloads"),
                             ("/resume_download", "resume downloads"), ("/retry_download", "retry downloads")]:
        with pytest.raises(AppError, match=f"bob is a viewer and cannot {action}"):
            viewer.predict("org/gamma", api_name=api_name)
    assert admin.predict("org/gamma", api_name="/get_model")["status"] == "queued"  # nothing changed
    assert admin.predict("org/gamma", api_name="/pause_download")["message"] == "Paused org/gamma."
    with pytest.raises(AppError, match="bob is a viewer and cannot resume downloads"):
        viewer.predict("org/gamma", api_name="/resume_download")
    assert admin.predict("org/gamma", api_name="/resume_download")["changed"] is True
    assert viewer.predict(api_name="/get_logs")[-1].endswith("alice: resumed download of org/gamma")


def test_roles_with_a_trusted_header(ui_settings: Settings, serve_ui: Callable[..., Any],
                                     gradio_client: Callable[..., Any]) -> None:
    settings = ui_settings.model_copy(update={"auth_header": "X-Forwarded-User", "auth_admins": "carol"})
    server, _ = serve_ui(settings)
    carol = gradio_client(server.url, headers={"X-Forwarded-User": "carol"})
    dave = gradio_client(server.url, headers={"X-Forwarded-User": "dave"})
    assert carol.predict("org/delta", api_name="/download_model")["changed"] is True
    assert dave.predict("org/delta", api_name="/get_model")["requested_by"] == "carol"
    with pytest.raises(AppError, match="dave is a viewer and cannot remove models"):
        dave.predict("org/delta", api_name="/remove_model")


def test_a_login_works_on_every_worker_and_survives_a_restart(ui_settings: Settings, users_file: Path,
                                                              serve_ui: Callable[..., Any],
                                                              redis_client: redis.Redis) -> None:
    settings = ui_settings.model_copy(update={"auth_file": users_file})
    first, _ = serve_ui(settings)
    second, _ = serve_ui(settings)
    cookies = {COOKIE_NAME: login(first.url, "alice")}

    def download(url: str, name: str) -> httpx.Response:
        return httpx.post(url + "/gradio_api/run/download_model", json={"data": [name, None, None, None]},
                          cookies=cookies, timeout=10)

    assert download(second.url, "org/one").status_code == 200
    first.stop()
    from tests.ui.ui_worker import build_app

    restarted_controller = Controller(settings)
    restarted = ThreadServer(build_app(restarted_controller)).start()
    try:
        assert download(restarted.url, "org/two").json()["data"][0]["changed"] is True
        assert httpx.get(restarted.url + "/", cookies=cookies, timeout=10).status_code == 200
        logout = httpx.get(restarted.url + "/logout", cookies=cookies, follow_redirects=False, timeout=10)
        assert logout.status_code == 303 and not redis_client.keys("modeldepot:session:*")
        assert download(restarted.url, "org/three").status_code == 401
    finally:
        restarted.stop()
        restarted_controller.close()


def test_wrong_passwords_pause_sign_in_on_every_worker(ui_settings: Settings, users_file: Path,
                                                        serve_ui: Callable[..., Any]) -> None:
    settings = ui_settings.model_copy(update={"auth_file": users_file, "login_max_failures": 3})
    first, _ = serve_ui(settings)
    second, _ = serve_ui(settings)

    def sign_in(url: str, name: str, password: str) -> httpx.Response:
        return httpx.post(url + "/login", data={"username": name, "password": password}, timeout=10)

    assert [sign_in(first.url, "alice", "guess").status_code for _ in range(3)] == [401, 401, 401]
    paused = sign_in(second.url, "alice", PASSWORDS["alice"])  # even the right password waits
    assert paused.status_code == 429 and "Too many wrong passwords for &#x27;alice&#x27;" in paused.text
    assert "Try again in 5 minutes" in paused.text
    assert sign_in(second.url, "bob", PASSWORDS["bob"]).status_code == 303  # other names are not paused


def test_the_poll_makes_no_redis_call(ui_settings: Settings, serve_ui: Callable[..., Any],
                                      redis_client: redis.Redis) -> None:
    """200 polls of the page's version route cost no Redis command (only the listener's own 2 s version poll)."""
    server, controller = serve_ui(ui_settings)
    config = httpx.get(server.url + "/config", timeout=10).json()
    assert "api/state-version" in json.dumps(config)  # the page's script polls it
    wait_until(lambda: controller.in_sync, 10, "the replica to sync")
    expected = {"version": controller.version, "structural": controller.structural_version, "in_sync": True}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        before = int(redis_client.info("stats")["total_commands_processed"])
        started = time.monotonic()
        for _ in range(200):
            reply = http.get("/api/state-version")
            assert reply.json() == expected and reply.headers["cache-control"] == "no-store"
        elapsed = time.monotonic() - started
        after = int(redis_client.info("stats")["total_commands_processed"])
    allowed = 2 + 2 * int(elapsed / 2 + 1)  # INFO itself, plus the listener's GET version every 2 s
    assert after - before <= allowed, f"{after - before} Redis commands during 200 polls ({elapsed:.1f}s)"
