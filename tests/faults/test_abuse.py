"""Abuse: generated bad input, planted job payloads, and secrets that must never leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from app.core.controller import Controller
from app.core.errors import InvalidInputError
from app.core.settings import Settings
from tests.hubserver import HubServer
from tests.redis_server import RedisServer
from tests.support.waiting import wait_status, wait_until
from tests.support.workers import WorkerProcess

NASTY = ["", " ", "..", "/", "/etc/passwd", "org/../../etc", "../../x/y", "a/b/c", "org/name\x00", "x" * 10_000,
         "\u043erg/name", "org/n\u0430me", "$(rm -rf /)", "org/`id`", "org/name;ls", "../*", "/abs/*", "org/ name",
         "org//name", "\\\\server\\share", "org/name@../../etc", "org/name@", "org/name@-rf", "~/x", "org/.."]

names = st.one_of(
    st.sampled_from(NASTY),
    st.text(min_size=0, max_size=40),
    st.builds(lambda a, b: f"{a}/{b}", st.sampled_from(["..", ".", "", "/", "org", "\u043erg", "a b"]),
              st.text(max_size=20)),
    st.builds(lambda n: "../" * n + "etc/passwd", st.integers(0, 5)),
)
patterns = st.lists(st.one_of(st.sampled_from(["../*", "/abs/*", "a/../../b", "\x00", "", "x" * 300]),
                              st.text(max_size=12)), min_size=1, max_size=3)


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def abuse_controller(settings_env: Settings) -> Controller:
    return Controller(settings_env, listen=False)


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, revision=st.one_of(st.none(), st.sampled_from(NASTY), st.text(max_size=20)),
       allow=st.one_of(st.none(), patterns))
def test_bad_input_is_rejected_or_safe(abuse_controller: Controller, data_dir: Path, name: str,
                                       revision: str | None, allow: list[str] | None) -> None:
    parent = data_dir.parent
    before = _listing(parent)
    queued_before = len(abuse_controller.jobs.downloads)
    try:
        outcome = abuse_controller.download_model(name, revision=revision, allow_patterns=allow)
    except InvalidInputError as e:
        message = str(e)
        assert message and len(message) < 400 and "Traceback" not in message
        assert len(abuse_controller.jobs.downloads) == queued_before
    else:
        repo_id = outcome.name.split("@")[0]
        org, model = repo_id.split("/")
        assert ".." not in repo_id and org and model and repo_id.isascii()
    assert _listing(parent) == before


def test_cli_rejects_bad_names(settings_env: Settings) -> None:
    for bad in ["../../etc", "org/../x", "a/b/c", "$(id)/x"]:
        proc = subprocess.run([sys.executable, "-m", "app.cli", "pull", bad], capture_output=True, text=True,
                              timeout=60, env=os.environ)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr and proc.stderr.strip()


def test_planted_job_cannot_run_code(settings_env: Settings, start_worker, tmp_path: Path,
                                     redis_client: redis.Redis) -> None:
    """Jobs written straight into Redis that name os.system: JSON on the downloads queue, pickle on maintenance."""
    markers = {"json": tmp_path / "pwned-by-json", "pickle": tmp_path / "pwned-by-pickle"}
    queue = Queue(f"{settings_env.key_prefix}-downloads", connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue("os.system", f"touch {markers['json']}")
    pickled = Queue(f"{settings_env.key_prefix}-maintenance", connection=redis_client)  # pickle serializer
    pjob = pickled.enqueue("os.system", f"touch {markers['pickle']}")
    start_worker()
    ended = (JobStatus.FAILED, JobStatus.FINISHED)
    for planted in (job, pjob):
        wait_until(lambda planted=planted: planted.get_status(refresh=True) in ended, 30, f"the end of {planted.id}")

    assert (job.get_status(), pjob.get_status()) == (JobStatus.FAILED, JobStatus.FAILED)
    assert not markers["json"].exists() and not markers["pickle"].exists()
    job.refresh()
    assert "refusing to run 'os.system': not a Model Depot job function" in (job.exc_info or "")
    raw = redis_client.hget(f"rq:job:{job.id}", "data")
    json.loads(zlib.decompress(raw))  # RQ zlib-compresses the payload; inside it is JSON, not pickle


def test_secrets_never_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub: HubServer) -> None:
    password, token = "s3cret-redis-pass-914", "hf_sEcReTtOkEn0123456789"
    server = RedisServer(tmp_path / "redis", password=password).start()
    try:
        data_dir = tmp_path / "data"
        env = {**os.environ, "MODELDEPOT_REDIS_URL": server.url, "MODELDEPOT_DATA_DIR": str(data_dir),
               "HF_TOKEN": token, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}
        hub.valid_tokens.add(token)
        hub.add_repo("org/gated", {"config.json": b"{}"}, gated=True)
        hub.add_repo("org/open", {"config.json": b"{}"})
        worker = WorkerProcess(env, tmp_path)
        try:
            settings = Settings(redis_url=server.url, data_dir=data_dir)
            with Controller(settings) as controller:
                controller.download_model("org/gated")
                controller.download_model("org/missing")
                wait_status(controller, "org/gated", {"ready"})
                wait_status(controller, "org/missing", {"failed"})
                dumped = _dump_redis(server.client()) + json.dumps(controller.fetch_models())
                dumped += _web_outputs(controller)
        finally:
            worker.stop()
        everything = dumped + worker.log_path.read_text() + (data_dir / "controller_state.json").read_text()
        assert token not in everything
        assert password not in everything
    finally:
        server.stop()


def _web_outputs(controller: Controller) -> str:
    """/metrics, /readyz and an API error message from a real UI worker on this controller."""
    import httpx

    from tests.ui.servers import ThreadServer
    from tests.ui.ui_worker import build_app

    server = ThreadServer(build_app(controller)).start()
    try:
        texts = [httpx.get(server.url + path, timeout=10).text for path in ("/metrics", "/readyz")]
        bad = httpx.post(server.url + "/gradio_api/run/download_model", json={"data": ["../x", None, None, None]},
                         timeout=10)
        texts.append(bad.text)
        return "\n".join(texts)
    finally:
        server.stop()


def _dump_redis(client: redis.Redis) -> str:
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts.append(key.decode(errors="replace"))
        if kind == "string":
            parts.append(client.get(key).decode(errors="replace"))
        elif kind == "hash":
            parts.extend(f"{k!r}{v!r}" for k, v in client.hgetall(key).items())
        elif kind == "list":
            parts.extend(repr(v) for v in client.lrange(key, 0, -1))
        elif kind == "stream":
            parts.extend(repr(e) for e in client.xrange(key))
        elif kind in ("set", "zset"):
            parts.append(repr(client.zrange(key, 0, -1) if kind == "zset" else client.smembers(key)))
    return "\n".join(parts)


@pytest.fixture
def api_server(settings_env: Settings):
    from tests.ui.servers import ThreadServer
    from tests.ui.ui_worker import build_app

    controller = Controller(settings_env)
    server = ThreadServer(build_app(controller)).start()
    yield server, controller
    server.stop()
    controller.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, allow=st.one_of(st.none(), st.sampled_from(["../*", "/abs/*", "*.json,../../x", "\x00"])))
@example(name=" org/clean \n", allow=None)  # a 200, whatever else hypothesis draws
@example(name="org/pinned@v1.0", allow=None)
def test_bad_input_through_the_http_api(api_server, data_dir: Path, name: str, allow: str | None) -> None:
    import httpx

    server, controller = api_server
    before, queued = _listing(data_dir.parent), controller.jobs.downloads.job_ids
    models_before = {m["name"]: m for m in controller.fetch_models()}
    response = httpx.post(server.url + "/gradio_api/run/download_model", json={"data": [name, None, allow, None]},
                          timeout=10)
    if response.status_code == 200:
        _assert_queued_exactly(controller, name.strip(), response.json()["data"][0], models_before, queued)
    else:
        error = response.json().get("error") or ""
        assert error and "Traceback" not in error and len(error) < 400
        assert controller.jobs.downloads.job_ids == queued
        assert {m["name"] for m in controller.fetch_models()} == set(models_before)
    assert _listing(data_dir.parent) == before


def _assert_queued_exactly(controller: Controller, clean: str, outcome: dict, models_before: dict[str, dict],
                           queued: list[str]) -> None:
    """A 200 means ``clean`` (the name without its surrounding whitespace) is queued under that exact name, and
    nothing else was added: one new job for it, or none when an earlier example had queued it already."""
    assert outcome["name"] == clean
    record = controller.get_model(clean)
    repo_id, _, revision = clean.partition("@")
    assert (record["name"], record["repo_id"], record["revision"]) == (clean, repo_id, revision or None)
    assert record["status"] == "queued" and record["allow_patterns"] is None and record["job_id"] == outcome["job_id"]
    assert {m["name"] for m in controller.fetch_models()} == set(models_before) | {clean}
    jobs_now = controller.jobs.downloads.job_ids
    if outcome["changed"]:
        assert clean not in models_before
        assert jobs_now == [*queued, outcome["job_id"]]
        assert controller.jobs.downloads.fetch_job(outcome["job_id"]).args == [clean]
    else:
        assert models_before[clean]["status"] == "queued" and jobs_now == queued
