"""The two streams: a model's NDJSON progress (fed by the replica) and the SSE of every change (fed by the Redis
stream), on a real UI worker; the progress of a real download by a real RQ worker from the test Hub."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from app.core.keys import Keys
from app.core.records import ModelRecord
from app.core.settings import Settings
from app.core.store import LogEntry, Store
from app.web.api import events
from tests.api.conftest import Api
from tests.api.sse import SseReader, ndjson
from tests.api.test_routes import error
from tests.hubserver import HubServer
from tests.support.waiting import wait_until


@pytest.fixture
def writer(settings_env: Settings, redis_client: redis.Redis) -> Store:
    """Another process's writes, as a download job makes them."""
    return Store.for_settings(redis_client, settings_env, sender="test-worker")


def step(store: Store, name: str, change: Callable[[ModelRecord], ModelRecord], kind: str = "model") -> float:
    """Apply one transition; returns when it was written (``time.monotonic``)."""
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        assert current is not None
        return change(current), None

    store.update(name, mutate, kind=kind)
    return time.monotonic()


def tick(done: int) -> Callable[[ModelRecord], ModelRecord]:
    return lambda r: r.progressed(bytes_done=done, bytes_total=1000, files_done=0, files_total=2, speed_bps=1e6,
                                  eta_s=1.0, retry=None)


def test_progress_follows_each_change_until_ready(api: Api, writer: Store) -> None:
    httpx.post(api.url + "/models", json={"model": "org/p"})
    steps: list[Callable[[ModelRecord], ModelRecord]] = [
        lambda r: r.claim(), lambda r: r.planned(commit="c" * 40, bytes_total=1000, files_total=2, bytes_needed=1000),
        tick(300), tick(700), lambda r: r.ready(commit="c" * 40, size_bytes=1000, bytes_total=1000, files_total=2)]
    lines: list[dict[str, Any]] = []
    delays: list[float] = []
    with httpx.stream("GET", api.url + "/models/org/p/progress", timeout=10) as response:
        reader = ndjson(response)
        lines.append(next(reader))
        for change in steps:
            written = step(writer, "org/p", change, kind="progress")
            lines.append(next(reader))
            delays.append(time.monotonic() - written)
        assert list(reader) == []  # the stream ended after ready
    assert [(line["status"], line["bytes_done"]) for line in lines] == [
        ("queued", 0), ("downloading", 0), ("downloading", 0), ("downloading", 300), ("downloading", 700),
        ("ready", 1000)]
    assert lines[-1] == api.controller.get_model("org/p")
    assert max(delays) < 0.5, delays


def test_progress_ends_at_rest_or_when_gone(api: Api, writer: Store) -> None:
    httpx.post(api.url + "/models", json={"model": "org/paused"})
    httpx.post(api.url + "/models", json={"model": "org/gone"})
    with httpx.stream("GET", api.url + "/models/org/paused/progress", timeout=10) as response:
        reader = ndjson(response)
        assert next(reader)["status"] == "queued"
        httpx.post(api.url + "/models/org/paused/pause")
        assert [line["status"] for line in reader] == ["paused"]
    with httpx.stream("GET", api.url + "/models/org/paused/progress", timeout=10) as response:
        assert [line["status"] for line in ndjson(response)] == ["paused"]  # at rest already: one line
    with httpx.stream("GET", api.url + "/models/org/gone/progress", timeout=10) as response:
        reader = ndjson(response)
        assert next(reader)["status"] == "queued"
        writer.force("org/gone", None, None)
        assert list(reader) == [{"name": "org/gone", "status": None}]


def test_a_client_that_leaves_a_progress_stream_frees_it(api: Api) -> None:
    httpx.post(api.url + "/models", json={"model": "org/w"})
    with httpx.stream("GET", api.url + "/models/org/w/progress", timeout=10) as response:
        reader = ndjson(response)  # kept: a dropped iterator closes the response
        next(reader)
        wait_until(lambda: api.controller.replica._listeners, 5, "the watch to attach")
        [watch] = [callback.__self__ for callback in api.controller.replica._listeners]
        wait_until(lambda: len(watch._waiters) == 1, 5, "the stream to wait")
    wait_until(lambda: not watch._waiters, 5, "the stream to end with its client")


def test_progress_of_a_real_download_ends_ready(api: Api, hub: HubServer, start_worker) -> None:
    hub.add_repo("org/real", {"model.safetensors": 3_000_000, "config.json": b"{}"})
    hub.throttle_bps = 3_000_000
    start_worker().wait_alive(api.controller.redis)
    assert httpx.post(api.url + "/models", json={"model": "org/real"}).status_code == 202
    with httpx.stream("GET", api.url + "/models/org/real/progress", timeout=60) as response:
        lines = list(ndjson(response))
    statuses = [line["status"] for line in lines]
    assert statuses[-1] == "ready" and statuses.count("ready") == 1, statuses
    assert "downloading" in statuses and len(lines) >= 3
    done = [line["bytes_done"] for line in lines]
    assert done == sorted(done) and lines[-1]["bytes_done"] == lines[-1]["bytes_total"] > 3_000_000
    assert lines[-1]["error"] is None


def test_events_live_with_ids_of_the_stream(api: Api, writer: Store, redis_client: redis.Redis,
                                            settings_env: Settings) -> None:
    key = Keys(settings_env.key_prefix).events_stream
    api.controller.add_log("before the stream")
    with httpx.stream("GET", api.url + "/events", timeout=10) as response:
        reader = SseReader(response)
        assert reader.next().retry == 1000
        httpx.post(api.url + "/models", json={"model": "org/e"})
        step(writer, "org/e", lambda r: r.claim())
        step(writer, "org/e", tick(10), kind="progress")
        api.controller.add_log("hello")
        got = [next(reader.events()) for _ in range(4)]
    entries = redis_client.xrange(key)[1:]  # after the line written before the stream began
    assert [e.id for e in got] == [entry_id.decode() for entry_id, _ in entries]
    assert [e.event for e in got] == ["model", "model", "progress", "log"]
    assert [e.data for e in got] == [fields[b"event"].decode() for _, fields in entries]
    assert got[0].json()["record"]["status"] == "queued" and got[3].json()["log"]["what"] == "hello"
    assert response.headers["cache-control"] == "no-store"


def test_events_resume_resync_and_keep_alive(api: Api, redis_client: redis.Redis, settings_env: Settings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    key = Keys(settings_env.key_prefix).events_stream
    for n in range(5):
        api.controller.add_log(f"line {n}")
    ids = [entry_id.decode() for entry_id, _ in redis_client.xrange(key)]
    with httpx.stream("GET", api.url + "/events", headers={"Last-Event-ID": ids[1]}, timeout=10) as response:
        assert [e.id for e in (lambda r: [next(r) for _ in range(3)])(SseReader(response).events())] == ids[2:]
    with httpx.stream("GET", api.url + "/events", params={"since": ids[3]}, timeout=10) as response:
        assert next(SseReader(response).events()).id == ids[4]
    with httpx.stream("GET", api.url + "/events", headers={"Last-Event-ID": "0"}, timeout=10) as response:
        assert next(SseReader(response).events()).id == ids[0]

    redis_client.xtrim(key, maxlen=2, approximate=False)
    with httpx.stream("GET", api.url + "/events", headers={"Last-Event-ID": ids[1]}, timeout=10) as response:
        reader = SseReader(response).events()
        resync = next(reader)
        assert resync.event == "resync" and resync.id == ids[4]
        assert resync.json()["oldest"] == ids[3] and "reload the list" in resync.json()["message"]
        api.controller.add_log("after the resync")
        assert next(reader).json()["log"]["what"] == "after the resync"
    future = "9999999999999-0"
    with httpx.stream("GET", api.url + "/events", headers={"Last-Event-ID": future}, timeout=10) as response:
        assert next(SseReader(response).events()).event == "resync"  # an id this stream never had

    monkeypatch.setattr(events, "KEEPALIVE_S", 0.2)
    with httpx.stream("GET", api.url + "/events", timeout=10) as response:
        reader = SseReader(response)
        assert reader.next().retry == 1000
        began = time.monotonic()
        assert reader.next().comment == "keep-alive" and reader.next().comment == "keep-alive"
        assert time.monotonic() - began < 2


def test_bad_event_ids(api: Api) -> None:
    for bad in ("abc", "1-2-3", "-1", "1" * 30):
        with httpx.stream("GET", api.url + "/events", headers={"Last-Event-ID": bad}, timeout=10) as response:
            response.read()
            assert "is not an event id" in error(response, 400, "invalid_input") or len(bad) > 20


def test_each_event_stream_has_its_own_connection_and_frees_it(api: Api, redis_client: redis.Redis) -> None:
    def clients() -> int:
        return sum(1 for c in redis_client.client_list() if c.get("cmd") == "xread")

    streams = [httpx.stream("GET", api.url + "/events", timeout=10) for _ in range(3)]
    readers = [SseReader(s.__enter__()) for s in streams]  # kept: a dropped reader closes its response
    try:
        for reader in readers:
            assert reader.next().retry == 1000
        wait_until(lambda: clients() == 3, 5, "three blocking reads")
        replies: list[int] = []
        thread = threading.Thread(target=lambda: replies.append(httpx.get(api.url + "/models").status_code))
        thread.start()
        thread.join(5)
        assert replies == [200]  # the loop is free while they block
    finally:
        for stream in streams:
            stream.__exit__(None, None, None)
    wait_until(lambda: clients() == 0, 5, "the blocking reads to end with their clients")
