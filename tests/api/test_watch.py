"""Waiting on the event loop for the replica: ``Replica.on_change`` and :class:`~app.web.api.watch.ReplicaWatch`."""

from __future__ import annotations

import asyncio
import threading
import time

from app.core.store import State
from app.core.sync import Replica
from app.web.api.watch import ReplicaWatch


def event(version: int) -> dict[str, object]:
    return {"v": version, "type": "log", "name": "", "record": None, "log": {"who": "t", "what": f"{version}"}}


def test_on_change_is_called_after_each_new_version_until_removed() -> None:
    replica = Replica(10)
    seen: list[int] = []
    stop = replica.on_change(lambda: seen.append(replica.version))
    replica.apply(event(1))
    replica.apply(event(1))  # stale: nothing new
    replica.reset(State(5, {}, []))
    replica.reset(State(3, {}, []))  # older: ignored
    replica.on_change(lambda: 1 / 0)  # a broken watcher is logged, the replica goes on
    replica.apply(event(6))
    stop()
    replica.apply(event(7))
    assert seen == [1, 5, 6] and replica.version == 7


def test_waiting_for_a_change_from_another_thread() -> None:
    replica = Replica(10)
    watch = ReplicaWatch(replica)

    async def scenario() -> tuple[bool, float, bool, bool, bool]:
        began = time.monotonic()
        quiet = await watch.changed(0, 0.1)
        waited = time.monotonic() - began
        threading.Timer(0.05, replica.apply, args=(event(1),)).start()
        woken = await watch.changed(0, 5)
        threading.Timer(0.05, lambda: [replica.apply(event(v)) for v in (2, 3)]).start()
        reached = await watch.reached(3, 5)
        late = await watch.reached(10, 0.1)
        return quiet, waited, woken, reached, late

    quiet, waited, woken, reached, late = asyncio.run(scenario())
    assert (quiet, woken, reached, late) == (False, True, True, False)
    assert 0.09 < waited < 1 and not watch._waiters
    watch.close()
    assert replica._listeners == []
