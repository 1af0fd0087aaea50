"""Two UI worker processes behind HAProxy (deploy/haproxy.cfg): any worker answers any call, a revocation counts
on the other worker at once, and an event stream cut mid-storm and resumed (on whichever worker) misses nothing
and repeats nothing."""

from __future__ import annotations

import threading
import time

import httpx
import redis

from app.core.keys import Keys
from app.core.records import ModelRecord, Status
from app.core.settings import Settings
from app.core.store import LogEntry, Store
from app.web.auth.sessions import COOKIE_NAME
from app.web.auth.tokens import TokenStore
from tests.api.conftest import API, bearer, login, make_token
from tests.api.sse import SseReader
from tests.api.test_routes import error

STORM_EVENTS = 600


def test_any_worker_answers_and_a_revocation_counts_everywhere_within_a_second(cluster, tokens: TokenStore) -> None:
    (ui0, ui1), balancer = cluster
    admin = bearer(make_token(tokens, "alice", "admin"))
    served = set()
    for _ in range(4):
        response = httpx.get(balancer.url + API + "/me", headers=admin, timeout=10)
        assert response.json() == {"user": "alice", "role": "admin", "via": "token"}
        served.add(response.headers["x-served-by"])
    assert served == {"ui0", "ui1"}  # round robin
    assert "No such route" in error(httpx.get(balancer.url + API + "/nothing", timeout=10), 404, "not_found")

    version = httpx.post(ui0.url + API + "/models", json={"model": "org/c"}, headers=admin).json()["version"]
    seen = httpx.get(ui1.url + API + "/models/org/c", params={"version": version}, headers=admin, timeout=10)
    assert seen.status_code == 200 and seen.json()["status"] == "queued"

    with httpx.Client(base_url=ui0.url + API, cookies={COOKIE_NAME: login(ui0.url, "alice")},
                      headers={"Origin": ui0.url}, timeout=10) as alice:
        token = alice.post("/tokens", json={"label": "laptop"}).json()["token"]
        assert httpx.get(ui1.url + API + "/me", headers=bearer(token)).status_code == 200
        assert alice.delete("/tokens/laptop").status_code == 200
        revoked_at = time.monotonic()
    while httpx.get(ui1.url + API + "/me", headers=bearer(token)).status_code != 401:
        assert time.monotonic() - revoked_at < 1.0, "the other worker still takes the revoked token"
    assert time.monotonic() - revoked_at < 1.0
    assert "no-store" in httpx.get(balancer.url + API + "/models", headers=admin).headers["cache-control"]
    for ui in (ui0, ui1):
        assert token not in ui.log_path.read_text() and token[4:20] not in ui.log_path.read_text()


class Storm(threading.Thread):
    """Writes of every kind (model, progress, log), a few ms apart; the last one is the log line :data:`OVER`."""

    def __init__(self, store: Store) -> None:
        super().__init__(daemon=True)
        self.store = store

    def run(self) -> None:
        for n in range(STORM_EVENTS - 1):
            name = f"storm/m{(n - n % 3) % 20}"
            if n % 3 == 0:
                record = ModelRecord(name=name, repo_id=name, status=Status.DOWNLOADING, job_id=f"j{n}", attempt=1)
                self.store.force(name, record, LogEntry("storm", f"write {n}"))
            elif n % 3 == 1:
                self.store.update(name, lambda r, n=n: (r.model_copy(update={"bytes_done": n}), None),
                                  kind="progress")
            else:
                self.store.append_log(LogEntry("storm", f"line {n}"))
            time.sleep(0.004)
        self.store.append_log(LogEntry("storm", OVER))


OVER = "the storm is over"
CUTS = (120, 270, 420)
"""How many events the client has received when it cuts its connection (and reconnects with Last-Event-ID)."""


def test_events_resumed_after_cuts_mid_storm_arrive_exactly_once(cluster, tokens: TokenStore,
                                                                 settings_env: Settings,
                                                                 redis_client: redis.Redis) -> None:
    _, balancer = cluster
    viewer = bearer(make_token(tokens, "bob", "viewer"))
    key = Keys(settings_env.key_prefix).events_stream
    redis_client.xadd(key, {"event": '{"v":0,"type":"log"}'})  # a known start: the newest id before the storm
    start = redis_client.xrevrange(key, count=1)[0][0].decode()
    received: list[str] = []
    served_by: list[str] = []
    storm = Storm(Store.for_settings(redis_client, settings_env, sender="storm"))
    last: str | None = None
    with httpx.Client(base_url=balancer.url + API, headers=viewer, timeout=30) as client:
        for cut in (*CUTS, None):
            with client.stream("GET", "/events", headers={"Last-Event-ID": last} if last else {}) as response:
                served_by.append(response.headers["x-served-by"])
                reader = SseReader(response)
                assert reader.next().retry == 1000
                if last is None:
                    storm.start()  # once the first stream stands: every storm event comes after its start
                for event in reader.events():
                    assert event.event in {"model", "progress", "log"} and event.id, event
                    received.append(event.id)
                    last = event.id
                    if len(received) == cut:
                        assert storm.is_alive(), "the storm ended before the cut; make it longer"
                        break  # leaving the block closes the connection mid-storm
                    if OVER in event.data:
                        break
    storm.join()
    expected = [entry_id.decode() for entry_id, _ in redis_client.xrange(key, min=f"({start}")]
    assert len(expected) == STORM_EVENTS
    assert received == expected  # every event, in order, none twice
    assert len(set(served_by)) == 2, served_by  # the reconnections went round robin
