"""Failover: time from the primary's death to the first write a UI worker answers with 202, and to every UI
replica being in sync again, against what Sentinel itself takes to promote a replica; over 5 failovers.

Setup: a real Sentinel-managed Redis (``tests/support/sentinel.py``: a primary, 2 replicas and 3 sentinels on
127.0.0.1, ``down-after-milliseconds`` 1000, ``min-replicas-to-write 1`` on every node) and two UI worker processes
(``tests/ui/ui_worker.py``, sign-in off) on its ``redis+sentinel://`` URL. Two replicas, so the promoted node has a
replica as soon as Sentinel points the other one at it, and ``min-replicas-to-write 1`` does not hold writes back
until the killed node returns (with one replica it would). No download worker and no Hub (``HF_HUB_OFFLINE=1``):
a write is ``POST /api/v1/models`` of a new name (``bench/f<n>-u<ui>-<k>``), a download request that stays queued.

Each failover: both UIs answer ``/readyz`` and every replica has caught up; a writer thread per UI posts back to
back (one keep-alive connection, timeout 30 s) and stamps each call's send and answer; after 0.5 s the primary is
SIGKILLed (t0 just after). Then, in threads: the sentinels are polled every 10 ms (``SENTINEL
get-master-addr-by-name`` on each) for the first moment one names another node, and each UI's ``/readyz`` every
20 ms. Once both UIs are in sync the writers stop; once the sentinels have named the same node for 3 s, the killed
node is started again as a replica. Should the sentinels fail over again before the next round (a new primary nobody
killed: seen with ``down-after-milliseconds`` 1000), the row is marked †; "in sync" waits for the node most sentinels
name at the time.

Figures, per failover:
  promotion            kill -> a sentinel names the new primary: the baseline, what Sentinel itself takes
                       (down-after 1 s, then agreement on ODOWN, the election, REPLICAOF NO ONE, switch-master)
  first write          kill -> the answer of the first write *sent after* the kill that got a 202 (the later UI)
  after promotion      first write - promotion: our own cost (the goal: <= 3 s)
  in sync              kill -> both UIs' ``/readyz`` answer 200, name the primary most sentinels name, and carry
                       a ``version`` >= that of every 202 answered (by either UI) before the call was sent, the
                       first writes of both UIs after the kill included; shown from the promotion (goal: <= 3 s too)
  non-202              answers other than 202 (or no answer) during the failover: 0 when writes wait through it
The notes add when the new primary first accepts a plain ``SET`` (its replica attached, so ``min-replicas-to-write``
lets it write): the earliest any client could write.

    python bench/bench_failover.py [--quick] [--failovers N]

Exits 1 when a goal is missed or a write got another answer than 202; the temp dir (process logs) is then kept
and its path printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis

from bench.harness import ROOT, median, print_lines
from tests.redis_server import RedisServer
from tests.support.sentinel import SentinelCluster
from tests.ui.servers import UiWorkerProcess

API = "/api/v1/models"
UIS = 2
WARM_S = 0.5
SENTINEL_POLL_S = 0.01
READY_POLL_S = 0.02
ROUND_TIMEOUT_S = 60.0
STABLE_S = 3.0
GOAL_S = 3.0


@dataclass(frozen=True)
class Answer:
    """One ``POST /api/v1/models``: when it was sent and answered, its status (0: no answer) and ``version``."""

    sent: float
    answered: float
    status: int
    version: int | None
    error: str = ""


class Writer(threading.Thread):
    """Posts new download requests to one UI back to back until stopped."""

    def __init__(self, base: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.base, self.prefix = base, prefix
        self.answers: list[Answer] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            k = 0
            while not self.stop_event.is_set():
                k += 1
                self.answers.append(self._post(client, f"{self.prefix}-{k}"))

    @staticmethod
    def _post(client: httpx.Client, model: str) -> Answer:
        sent = time.monotonic()
        try:
            response = client.post(API, json={"model": model})
        except httpx.HTTPError as e:
            return Answer(sent, time.monotonic(), 0, None, repr(e))
        answered = time.monotonic()
        if response.status_code != 202:
            return Answer(sent, answered, response.status_code, None, response.text[:300])
        return Answer(sent, answered, 202, int(response.json()["version"]))

    def first_after(self, t0: float) -> Answer | None:
        """The first write sent after ``t0`` that got a 202."""
        return next((a for a in list(self.answers) if a.sent >= t0 and a.status == 202), None)


class Promotion(threading.Thread):
    """Polls every sentinel from the kill until stopped. The first moment one names a node other than ``old`` is the
    promotion; a later change of the node named is a further failover, of a new primary nobody killed. The first new
    node is also probed with a plain ``SET`` until it accepts writes."""

    def __init__(self, cluster: SentinelCluster, old: RedisServer) -> None:
        super().__init__(daemon=True)
        self.cluster, self.old = cluster, old
        self.named = threading.Event()
        self.stop_event = threading.Event()
        self.switches: list[tuple[float, int]] = []
        """(when, port): each time a sentinel named another node than the one named last."""
        self.views = [old.port] * len(cluster.sentinels)
        self.writable_at: float | None = None

    @property
    def at(self) -> float:
        return self.switches[0][0]

    @property
    def port(self) -> int:
        return self.switches[0][1]

    def current(self) -> int | None:
        """The node most sentinels name now (None while they disagree)."""
        port = max(set(self.views), key=self.views.count)
        return port if self.views.count(port) > len(self.views) // 2 else None

    def run(self) -> None:
        clients = [s.client() for s in self.cluster.sentinels]
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        try:
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                for i, client in enumerate(clients):
                    self._ask(i, client, deadline)
                time.sleep(SENTINEL_POLL_S)
        finally:
            for client in clients:
                client.close()

    def _ask(self, i: int, client: redis.Redis, deadline: float) -> None:
        try:
            address: Any = client.sentinel_get_master_addr_by_name(self.cluster.service)  # (host, port) or None
        except redis.RedisError:
            return
        if not address or int(address[1]) == self.views[i]:
            return
        self.views[i] = port = int(address[1])
        if port != (self.switches[-1][1] if self.switches else self.old.port):
            self.switches.append((time.monotonic(), port))
        if not self.named.is_set():
            self.named.set()
            threading.Thread(target=self._probe_writes, args=(port, deadline), daemon=True).start()

    def _probe_writes(self, port: int, deadline: float) -> None:
        client = redis.Redis("127.0.0.1", port, socket_timeout=2, socket_connect_timeout=2)
        try:
            while time.monotonic() < deadline:
                try:
                    client.set("bench:failover:probe", "1")
                    self.writable_at = time.monotonic()
                    return
                except redis.RedisError:  # NOREPLICAS until Sentinel has pointed the other replica at it
                    time.sleep(SENTINEL_POLL_S)
        finally:
            client.close()


class ReadyWatch(threading.Thread):
    """Polls one UI's ``/readyz`` until it is in sync after the failover (see the module docstring)."""

    def __init__(self, base: str, writers: Sequence[Writer], promotion: Promotion, t0: float) -> None:
        super().__init__(daemon=True)
        self.base, self.writers, self.promotion, self.t0 = base, writers, promotion, t0
        self.in_sync_at: float | None = None
        self.not_ready: dict[str, int] = {}

    def run(self) -> None:
        deadline = self.t0 + ROUND_TIMEOUT_S
        with httpx.Client(base_url=self.base, timeout=2) as client:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = client.get("/readyz")
                    status, body = response.status_code, response.json()
                except (httpx.HTTPError, ValueError) as e:
                    status, body = 0, {"reason": type(e).__name__}
                if status != 200:
                    reason = str(body.get("reason", "?")).split(" (")[0]
                    self.not_ready[reason] = self.not_ready.get(reason, 0) + 1
                elif self._caught_up(sent, body):
                    self.in_sync_at = time.monotonic()
                    return
                time.sleep(READY_POLL_S)

    def _caught_up(self, sent: float, body: dict[str, Any]) -> bool:
        current = self.promotion.current()
        if current is None or current == self.promotion.old.port or body.get("primary") != f"127.0.0.1:{current}":
            return False
        firsts = [w.first_after(self.t0) for w in self.writers]
        if any(first is None or first.answered > sent for first in firsts):
            return False  # "in sync again" includes each UI's first write after the kill
        seen = [a.version for w in self.writers for a in list(w.answers)
                if a.status == 202 and a.answered <= sent and a.version is not None]
        return int(body["version"]) >= max(seen)


@dataclass
class Failover:
    """What one failover measured, in seconds from the kill unless said."""

    promotion: float
    firsts: list[float]
    """Per UI: the answer of its first write sent after the kill that got a 202."""
    in_sync: float
    writable: float | None
    """From the promotion: the new primary's first accepted plain SET."""
    in_flight: list[Answer]
    """The writes sent before the kill and answered after it (one per UI, or none if it fell between two)."""
    non_202: list[Answer]
    writes: int
    switches: list[int]
    """The port of each node the sentinels named in turn after the kill (more than one: Sentinel failed over again)."""
    not_ready: dict[str, int] = field(default_factory=dict)

    @property
    def first_write(self) -> float:
        return max(self.firsts)

    @property
    def after_promotion(self) -> float:
        return self.first_write - self.promotion

    @property
    def ratio(self) -> float:
        return self.after_promotion / self.promotion

    @property
    def in_sync_after_promotion(self) -> float:
        return self.in_sync - self.promotion


# ---- the run -------------------------------------------------------------------------------------------


def stable_primary(cluster: SentinelCluster, *, timeout: float = 60) -> int:
    """The port of the node most sentinels have named for ``STABLE_S`` in a row: past the second a sentinel may
    take to fail over a node it has just promoted.

    Raises:
        TimeoutError: the sentinels kept changing their minds for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    port, since = 0, time.monotonic()
    while time.monotonic() < deadline:
        try:
            named = cluster.primary().port
        except LookupError:
            named = 0
        if named != port:
            port, since = named, time.monotonic()
        elif port and time.monotonic() - since >= STABLE_S:
            return port
        time.sleep(0.1)
    raise TimeoutError(f"the sentinels named no stable primary within {timeout}s")


def wait_ready(uis: Sequence[UiWorkerProcess], cluster: SentinelCluster, *, timeout: float = 120) -> int:
    """A stable primary, every replica caught up, and each UI ready naming it with 2 replicas online; its port.

    Raises:
        TimeoutError: not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        port = stable_primary(cluster)
        try:
            cluster.wait_in_sync(timeout=15)  # on the primary named when it starts: a failover meanwhile times out
            for ui in uis:
                _wait_ui(ui, f"127.0.0.1:{port}", time.monotonic() + 15)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
            continue
        if cluster.primary().port == port:
            return port


def _wait_ui(ui: UiWorkerProcess, primary: str, deadline: float) -> None:
    while True:
        try:
            response = httpx.get(ui.url + "/readyz", timeout=2)
            body = response.json()
            online = [r for r in body.get("replicas", []) if r["state"] == "online"]
            if response.status_code == 200 and body["primary"] == primary and len(online) == 2:
                return
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ui.name} not ready on {primary}; see {ui.log_path}")
        time.sleep(0.05)


def failover(n: int, cluster: SentinelCluster, uis: Sequence[UiWorkerProcess]) -> Failover:
    """Kill the primary under two writing UIs (both ready), measure, then bring the killed node back as a replica.

    Raises:
        TimeoutError: no promotion, or a UI not in sync again, within 60 s; the killed node did not rejoin.
    """
    writers = [Writer(ui.url, f"bench/f{n}-u{i}") for i, ui in enumerate(uis, 1)]
    for writer in writers:
        writer.start()
    try:
        time.sleep(WARM_S)
        old = cluster.kill_primary()
        t0 = time.monotonic()
        promotion = Promotion(cluster, old)
        watches = [ReadyWatch(ui.url, writers, promotion, t0) for ui in uis]
        for thread in [promotion, *watches]:
            thread.start()
        for watch in watches:
            watch.join(ROUND_TIMEOUT_S + 5)
    finally:
        for writer in writers:
            writer.stop_event.set()
        for writer in writers:
            writer.join(40)
    try:  # the sentinels are still watched: a second failover comes within about a second of the first
        cluster.wait_for_promotion(old)
        stable_primary(cluster)
        cluster.restart(old)
    finally:
        promotion.stop_event.set()
        promotion.join(10)
    return measure(t0, promotion, writers, watches)


def measure(t0: float, promotion: Promotion, writers: Sequence[Writer], watches: Sequence[ReadyWatch]) -> Failover:
    """The figures of one failover from the stamps its threads took.

    Raises:
        TimeoutError: a UI had no 202 after the kill, or was not in sync again.
    """
    firsts = [w.first_after(t0) for w in writers]
    if any(first is None for first in firsts) or any(w.in_sync_at is None for w in watches):
        raise TimeoutError(f"a UI got no 202 or was not in sync within {ROUND_TIMEOUT_S}s of the kill: "
                           f"first writes {firsts}, in sync at {[w.in_sync_at for w in watches]}")
    answers = [a for w in writers for a in w.answers]
    not_ready: dict[str, int] = {}
    for watch in watches:
        for reason, count in watch.not_ready.items():
            not_ready[reason] = not_ready.get(reason, 0) + count
    return Failover(
        promotion=promotion.at - t0,
        firsts=[f.answered - t0 for f in firsts if f is not None],
        in_sync=max(w.in_sync_at for w in watches if w.in_sync_at is not None) - t0,
        writable=None if promotion.writable_at is None else promotion.writable_at - promotion.at,
        in_flight=[a for a in answers if a.sent < t0 <= a.answered],
        non_202=[a for a in answers if a.status != 202],
        writes=len(answers),
        switches=[port for _, port in promotion.switches],
        not_ready=not_ready,
    )


def ui_workers(cluster: SentinelCluster, tmp: Path) -> list[UiWorkerProcess]:
    """Two UI workers on the cluster's URL (not started), after seeding the empty Redis as `modeldepot serve` does."""
    from app.core.seeding import seed_configured
    from app.core.settings import Settings

    data = tmp / "data"
    (data / "models").mkdir(parents=True)
    env = {**os.environ, "MODELDEPOT_REDIS_URL": cluster.url, "MODELDEPOT_DATA_DIR": str(data),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    seed_configured(Settings(redis_url=cluster.url, data_dir=data))
    return [UiWorkerProcess(env, tmp, f"ui{i}") for i in range(1, UIS + 1)]


def run(failovers: int, title: str) -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    cluster = SentinelCluster(tmp / "redis", replicas=2, down_after_ms=1000)
    uis: list[UiWorkerProcess] = []
    ok = False
    try:
        cluster.start()
        uis = ui_workers(cluster, tmp)
        for ui in uis:
            ui.start()
        for ui in uis:
            ui.wait_ready(timeout=120)
        results: list[Failover] = []
        for n in range(1, failovers + 2):
            primary = wait_ready(uis, cluster)
            if results and results[-1].switches[-1] != primary:  # the sentinels failed over after the round
                results[-1].switches.append(primary)
            if n <= failovers:
                results.append(failover(n, cluster, uis))
        ok = report(title, results)
    finally:
        for ui in uis:
            ui.stop()
        cluster.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"\nkept {tmp} (UI logs ui1.log, ui2.log; redis/node*/redis.log, redis/sentinel*/sentinel.log)")
    return ok


# ---- the table -----------------------------------------------------------------------------------------

HEAD = ("failover", "promotion (s)", "first write after kill (s)", "first write after promotion (s)",
        "in sync after promotion (s)", "ratio (first write after promotion / promotion)", "non-202 answers")


def _cells(label: str, figures: Sequence[float]) -> tuple[str, ...]:
    *seconds, times, errors = figures
    return (label, *(f"{value:.2f}" for value in seconds), f"{times:.2f}x", f"{errors:g}")


def _figures(r: Failover) -> list[float]:
    return [r.promotion, r.first_write, r.after_promotion, r.in_sync_after_promotion, r.ratio, len(r.non_202)]


def report(title: str, results: Sequence[Failover]) -> bool:
    """Print the table and the notes; True when both goals are met and every write got a 202.

    The summary rows take the median and the max of each column (the ratio's too, not a ratio of them).
    """
    columns = list(zip(*(_figures(r) for r in results), strict=True))
    lines = [HEAD, *(_cells(_label(n, r), _figures(r)) for n, r in enumerate(results, 1)),
             _cells("**median**", [median(c) for c in columns]), _cells("**max**", [max(c) for c in columns])]
    worst = max(r.after_promotion for r in results)
    worst_sync = max(r.in_sync_after_promotion for r in results)
    errors = sum(len(r.non_202) for r in results)
    print_lines(title, lines, notes(results))
    print(f"\ngoal: first write ≤ {GOAL_S:.0f} s after promotion: {_met(worst)} (max {worst:.2f} s)")
    print(f"goal: every UI replica in sync ≤ {GOAL_S:.0f} s after promotion: {_met(worst_sync)} "
          f"(max {worst_sync:.2f} s)")
    print(f"non-202 answers: {errors}")
    sys.stdout.flush()
    return worst <= GOAL_S and worst_sync <= GOAL_S and errors == 0


def _label(n: int, r: Failover) -> str:
    return f"{n} †" if len(r.switches) > 1 else str(n)


def _met(seconds: float) -> str:
    return "met" if seconds <= GOAL_S else "missed"


def _seconds(values: Sequence[float | None]) -> str:
    return ", ".join("-" if v is None else f"{v:.2f}" for v in values)


def notes(results: Sequence[Failover]) -> list[str]:
    reasons: dict[str, int] = {}
    for r in results:
        for reason, count in r.not_ready.items():
            reasons[reason] = reasons.get(reason, 0) + count
    lines = [
        f"Per failover, in seconds: kill -> both UIs in sync {_seconds([r.in_sync for r in results])}; "
        f"kill -> first 202 per UI {'; '.join(' / '.join(f'{f:.2f}' for f in r.firsts) for r in results)}; "
        "the writes in flight at the kill (per failover: status after seconds) "
        + "; ".join(" / ".join(f"{a.status} after {a.answered - a.sent:.2f}" for a in r.in_flight) or "-"
                    for r in results)
        + f"; promotion -> the new primary accepts a plain SET {_seconds([r.writable for r in results])}. "
        f"Writes per failover (both UIs, 0.5 s before the kill until both are in sync): "
        f"{', '.join(str(r.writes) for r in results)}.",
        "/readyz answers other than 200 while the UIs caught up (polled every 20 ms, both UIs, all failovers): "
        + ("; ".join(f"{count} x {reason!r}" for reason, count in sorted(reasons.items())) or "none") + ".",
    ]
    again = [f"{n} (ports {' -> '.join(map(str, r.switches))})"
             for n, r in enumerate(results, 1) if len(r.switches) > 1]
    if again:
        lines.append(f"† Sentinel failed over again, a new primary nobody killed, in failover {', '.join(again)}; "
                     "in sync is measured to the node named last.")
    bad = [a for r in results for a in r.non_202]
    if bad:
        lines.append("Non-202 answers: " + "; ".join(f"{a.status} after {a.answered - a.sent:.2f} s: {a.error[:150]}"
                                                     for a in bad[:10]))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 failovers")
    parser.add_argument("--failovers", type=int, default=5, help="how many failovers (default 5)")
    args = parser.parse_args()
    count = 2 if args.quick else args.failovers
    title = "bench_failover" + (" --quick" if args.quick else f" --failovers {count}" if count != 5 else "")
    return 0 if run(count, title) else 1


if __name__ == "__main__":
    raise SystemExit(main())
