"""What only the command line over HTTP has: tokens and sign-in, a server's own limits, answers that are not the
API's, and the two streams resuming after a cut (app/cli/remote.py, app/cli/streams.py).

The rest of the suite runs every user command in both modes (tests/cli/conftest.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from app.cli.remote import RemoteDepot, health_report
from app.cli.streams import LiveState, new_in_stream, server_events
from app.core.controller import Controller
from app.core.errors import NotFoundError
from app.core.quota import Limits
from app.core.records import Status
from app.core.settings import Settings
from app.core.status import HealthReport, QueueInfo, RoomInfo, TransferLimits, VolumeInfo, WorkerInfo
from app.web.auth.roles import Role
from app.web.auth.tokens import tokens_from_settings
from tests.cli.conftest import Cli, one_error_line
from tests.cli.test_lifecycle_commands import crowded, ready, record_of, write_on_disk  # noqa: F401
from tests.support.waiting import wait_until
from tests.ui.conftest import users_file  # noqa: F401
from tests.ui.servers import ThreadServer

SECRET = "mdp_" + "s3cr3t" * 7


@pytest.fixture
def serve(settings_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """``serve(**settings)``: a UI worker in a thread on the test's Redis and volume, with these settings changed;
    returns its URL."""
    from tests.ui.ui_worker import build_app

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    started: list[tuple[ThreadServer, Controller]] = []

    def start(**changes: Any) -> str:
        controller = Controller(settings_env.model_copy(update=changes))
        controller.replica.wait_for(controller.store.read_version(), timeout=5)
        server = ThreadServer(build_app(controller)).start()
        started.append((server, controller))
        return server.url

    yield start
    for server, controller in started:
        server.stop()
        controller.close()


def test_tokens_and_roles(serve: Callable[..., str], settings_env: Settings, users_file: Path,  # noqa: F811
                          redis_client: redis.Redis) -> None:
    url = serve(auth_file=users_file)
    store = tokens_from_settings(settings_env.model_copy(update={"auth_file": users_file}), redis_client)
    admin, _ = store.create("alice", Role.ADMIN)
    viewer, _ = store.create("bob", Role.VIEWER)
    with Controller(settings_env, listen=False) as controller:
        controller.download_model("org/a")
    http = Cli("http", url)
    listed, pinned, refused, anonymous, wrong, debug = run_all(
        http,
        (["ls"], {"MODELDEPOT_TOKEN": viewer}),
        (["--token", admin, "pin", "org/a"], {}),
        (["pin", "org/a"], {"MODELDEPOT_TOKEN": viewer}),
        (["ls"], {}),
        (["ls"], {"MODELDEPOT_TOKEN": SECRET}),
        (["--debug", "cancel", "org/a"], {"MODELDEPOT_TOKEN": SECRET}),
    )
    assert listed.returncode == 0 and "org/a" in listed.stdout
    assert pinned.returncode == 0 and pinned.stdout == "Pinned org/a; eviction never removes it.\n"
    assert one_error_line(refused) == ("error: bob is a viewer and cannot pin models. Ask an admin, or sign in as an "
                                       "admin at /login.")
    assert "You are not signed in" in one_error_line(anonymous)
    assert "The API token is wrong, expired or revoked" in one_error_line(wrong)
    assert debug.returncode != 0 and "PermissionDeniedError" in debug.stderr, debug.stderr
    for result in (wrong, debug):
        assert SECRET not in result.stdout + result.stderr
    with Controller(settings_env, listen=False) as controller:
        assert controller.get_logs()[-1].endswith("  alice: pinned org/a")


def run_all(cli: Cli, *cases: tuple[list[str], dict[str, str]]) -> list[Any]:
    results: list[Any] = [None] * len(cases)

    def run(i: int) -> None:
        results[i] = cli(*cases[i][0], env=cases[i][1])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_prune_with_the_servers_limits(serve: Callable[..., str], crowded: Settings) -> None:  # noqa: F811
    """The server's quota counts, not this process's settings; its message heads the same table."""
    http = Cli("http", serve(models_quota=3000))
    dry = http("prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = [line.rstrip() for line in dry.stdout.splitlines()]
    assert lines[0] == "A prune would remove org/a (2.0 kB), org/b (2.0 kB), freeing 4.0 kB."
    assert lines[1] == "Would remove 2 least recently used models:"
    assert [line.split()[0] for line in lines[3:6]] == ["org/a", "org/b", "total"]
    assert lines[-1] == "Nothing was removed (dry run); run `modeldepot prune` to remove them."
    pruned = http("prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("Removing org/a, org/b to free up to 4.0 kB.\nRemoving 2 least recently used")
    assert pruned.stdout.rstrip().endswith("Their removal jobs are queued; watch them with `modeldepot ls`.")
    assert record_of(crowded, "org/a").status is Status.REMOVING and record_of(crowded, "org/c").status is Status.READY


# ---- answers that are not the API's ------------------------------------------------------------------------


class Stub:
    """A tiny server playing the API's part for one test; ``seen`` holds the requests' headers."""

    def __init__(self, routes: list[Route]) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        app = Starlette(routes=routes)

        async def record(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.seen.append((scope["path"], {k.decode(): v.decode() for k, v in scope["headers"]}))
            await app(scope, receive, send)

        self.server = ThreadServer(record).start()
        self.url = self.server.url

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.seen if seen == path]


@pytest.fixture
def stub() -> Iterator[Callable[[list[Route]], Stub]]:
    stubs: list[Stub] = []

    def start(routes: list[Route]) -> Stub:
        stubs.append(Stub(routes))
        return stubs[-1]

    yield start
    for started in stubs:
        started.server.stop()


def test_answers_that_are_not_the_api(stub: Callable[[list[Route]], Stub]) -> None:
    async def throttled(request: Request) -> Response:
        return JSONResponse({"error": {"code": "too_many_requests", "message": "Too many wrong API tokens from this "
                                       "address; try again in 5 minutes."}}, 429, headers={"Retry-After": "300"})

    async def page(request: Request) -> Response:
        return PlainTextResponse("<html>Gradio</html>", 404, media_type="text/html")

    async def proxy(request: Request) -> Response:
        return PlainTextResponse("Bad Gateway", 502)

    server = stub([Route("/api/v1/models", throttled), Route("/api/v1/models/org/{name}", page),
                   Route("/api/v1/status", proxy)])
    http = Cli("http", server.url)
    too_many, old_server, down = run_all(http, (["ls"], {"MODELDEPOT_TOKEN": SECRET}), (["rm", "org/a", "--yes"], {}),
                                         (["status"], {}))
    assert one_error_line(too_many) == "error: Too many wrong API tokens from this address; try again in 5 minutes."
    assert f"{server.url} did not answer as the Model Depot API (HTTP 404, text/html" in one_error_line(old_server)
    assert "Set MODELDEPOT_URL to a UI worker's address" in one_error_line(old_server)
    assert one_error_line(down) == (f"error: cannot reach the Model Depot API at {server.url}: it answered HTTP 502. "
                                    "Is its UI worker running? Check MODELDEPOT_URL.")
    assert server.headers_of("/api/v1/models")[0]["authorization"] == f"Bearer {SECRET}"
    assert "authorization" not in server.headers_of("/api/v1/status")[0]


# ---- the streams -----------------------------------------------------------------------------------------------


def record(name: str, status: str, done: int = 0) -> dict[str, Any]:
    return {"name": name, "repo_id": name, "status": status, "bytes_done": done, "bytes_total": 100}


def log_event(entry_id: str, what: str, *, name: str = "", rec: dict[str, Any] | None = None) -> bytes:
    event = {"v": 1, "type": "model" if name else "log", "sender": "x", "name": name, "record": rec,
             "log": {"ts": 1_700_000_000.0, "who": "bob", "what": what}}
    return f"id: {entry_id}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def line(what: str) -> str:
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(1_700_000_000.0))}  bob: {what}"


def test_the_events_stream_resumes_where_it_was_cut(stub: Callable[[list[Route]], Stub]) -> None:
    """Cut after two events: the reconnect sends the last id, and each event counts once; a resync reloads."""
    connections: list[str | None] = []
    loaded, reloaded = threading.Event(), threading.Event()

    async def events(request: Request) -> Response:
        connections.append(request.headers.get("last-event-id"))

        async def body() -> AsyncIterator[bytes]:
            if len(connections) == 1:
                yield b": opened\n\n"
                while not loaded.is_set():  # the events come after the client read the log
                    await anyio_sleep(0.01)
                yield b"retry: 1000\n\n" + log_event("5-0", "one") + b": keep-alive\n\n"
                yield log_event("6-0", "two", name="org/a", rec=record("org/a", "downloading", 50))
                return  # the connection drops
            if len(connections) == 2:
                yield log_event("7-0", "three")
                yield b"id: 7-0\nevent: resync\ndata: {}\n\n"
                return
            yield log_event("8-0", "four")
            await anyio_sleep(30)

        return StreamingResponse(body(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        if len(connections) >= 2:
            reloaded.set()
            return JSONResponse({"models": [record("org/a", "ready", 100)]})
        return JSONResponse({"models": [record("org/a", "queued")]})

    async def logs(request: Request) -> Response:
        loaded.set()
        history = [line("zero")] + ([line(w) for w in ("one", "two", "three")] if len(connections) >= 2 else [])
        return JSONResponse({"logs": history})

    server = stub([Route("/api/v1/events", events), Route("/api/v1/models", models), Route("/api/v1/logs", logs)])
    with RemoteDepot(server.url, SecretStr(SECRET), settings=Settings(), listen=True) as depot:
        assert depot.get_logs()[0] == line("zero")
        wait_until(lambda: depot.get_logs()[-1:] == [line("four")], 10, "the third connection's event")
        assert depot.get_logs() == [line(w) for w in ("zero", "one", "two", "three", "four")]
        assert reloaded.is_set() and depot.models["org/a"]["status"] == "ready"
    assert connections == [None, "6-0", "7-0"]
    assert all(h["authorization"] == f"Bearer {SECRET}" for h in server.headers_of("/api/v1/events"))


async def anyio_sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


def test_the_progress_stream_reconnects_until_the_last_line(stub: Callable[[list[Route]], Stub]) -> None:
    calls: list[int] = []

    async def progress(request: Request) -> Response:
        calls.append(1)

        async def body() -> AsyncIterator[bytes]:
            if len(calls) == 1:
                yield (json.dumps(record("org/a", "queued")) + "\n").encode()
                yield (json.dumps(record("org/a", "downloading", 40)) + "\n").encode()
                return  # cut before the end
            yield (json.dumps(record("org/a", "downloading", 40)) + "\n").encode()
            yield (json.dumps({**record("org/a", "ready", 100), "size_bytes": 100}) + "\n").encode()

        return StreamingResponse(body(), media_type="application/x-ndjson")

    async def missing(request: Request) -> Response:
        return JSONResponse({"error": {"code": "not_found", "message": "org/b is not in the list"}}, 404)

    server = stub([Route("/api/v1/models/org/a/progress", progress), Route("/api/v1/models/org/b/progress", missing)])
    with RemoteDepot(server.url, None, settings=Settings()) as depot:
        with depot.progress("org/a") as feed:
            assert feed.models["org/a"]["status"] in ("queued", "downloading", "ready")
            wait_until(lambda: feed.models["org/a"]["status"] == "ready", 10, "the last line")
            assert not feed.replica.wait_for(feed.version + 1, timeout=0.3)  # nothing after the last line
        with pytest.raises(NotFoundError, match="org/b is not in the list"):
            depot.progress("org/b")
    assert len(calls) == 2


def test_event_stream_parsing() -> None:
    text = ("retry: 1000\n\n: keep-alive\n\nid: 1-0\nevent: model\ndata: {\"a\":\ndata: 1}\n\n"
            "event: resync\n\nid: 2-0\r\ndata: x\r\n\r\n")
    events = list(server_events(text.splitlines()))
    assert [(e.type, e.data, e.id) for e in events] == [("model", '{"a":\n1}', "1-0"), ("resync", "", "1-0"),
                                                        ("message", "x", "2-0")]


def test_the_log_joins_the_stream_without_doubles() -> None:
    assert new_in_stream(["a", "b", "c"], ["b", "c", "d"]) == 2
    assert new_in_stream(["a", "b", "c"], ["d"]) == 0
    assert new_in_stream(["a", "b"], ["a", "b"]) == 2
    assert new_in_stream([], ["a"]) == 0
    state = LiveState(log_size=3)
    state.reset([record("org/a", "queued")], ["x", "y"])  # type: ignore[list-item]
    state.apply({"name": "org/a", "record": None, "log": {"ts": 0, "who": "w", "what": "removed"}})
    state.apply({"name": "", "record": None, "log": {"ts": 0, "who": "w", "what": "hello"}})
    assert state.models == {} and len(state.logs) == 3 and state.logs[0] == "y"
    assert state.logs[1].endswith("w: removed") and state.logs[2].endswith("w: hello")


def test_the_health_report_comes_back_whole() -> None:
    report = HealthReport(
        redis_url="redis://h:6379/0", redis_version="7.2", state_version=12,
        queues=[QueueInfo("downloads", "modeldepot-downloads", 1, 2, 0, 1)],
        workers=[WorkerInfo("w1", "host", 42, ["modeldepot-downloads"], "busy", "md-dl-1", 0.5, True)],
        models_by_status={"ready": 1}, volume=VolumeInfo("/models", 100, 50, 3),
        transfers=TransferLimits(None, 8, 30.0, 900.0, "auto"),
        room=RoomInfo(Limits(quota=1000), 21600, 600, models_bytes=10, percent_used=5.0, atime_mode="relatime"),
        problems=["x"], warnings=["y"],
    )
    sent = json.loads(json.dumps({**asdict(report), "healthy": report.healthy, "from_a_newer_server": 1}))
    assert health_report(sent) == report
