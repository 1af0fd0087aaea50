"""Replicas in separate processes against a real redis-server: convergence, kills, restarts, snapshots."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from app.core.controller import Controller
from app.core.seeding import seed_configured
from app.core.settings import Settings
from app.core.snapshot import persist, write_file
from tests.redis_server import RedisServer
from tests.support.waiting import wait_until

CTX = mp.get_context("spawn")


def _settings(url: str, data_dir: Path) -> Settings:
    return Settings(redis_url=url, data_dir=data_dir)


def _replica_process(url: str, data_dir: str, index: int, writes: int, total: int, out: Any, go: Any) -> None:
    controller = Controller(_settings(url, Path(data_dir)))
    go.wait(60)  # every replica is listening before the first write
    for i in range(writes):
        name = f"org{index}/model{i % 7}"
        if name in controller.models and controller.models[name]["status"] == "queued":
            controller.cancel_download(name, requested_by=f"p{index}")
        else:
            controller.download_model(name, requested_by=f"p{index}")
        controller.add_log(f"p{index} wrote {i}")
    with contextlib.suppress(AssertionError):  # on a timeout the parent still compares what this replica holds
        wait_until(lambda: controller.version >= controller.store.read_version() >= total, 60,
                   "every process's writes in Redis, applied by this replica")
    out.put((index, controller.version, controller.fetch_models(), controller.get_logs()))
    controller.close()


def _redis_view(url: str, data_dir: Path) -> tuple[int, list[dict[str, Any]], list[str]]:
    controller = Controller(_settings(url, data_dir), listen=False)
    return controller.version, controller.fetch_models(), controller.get_logs()


def _wait_converged(controllers: list[Controller], url: str, data_dir: Path, timeout: float = 20) -> None:
    def converged() -> bool:
        version, models, _ = _redis_view(url, data_dir)
        return all(c.version == version and c.fetch_models() == models for c in controllers)

    wait_until(converged, timeout, "the replicas to converge", interval=0.1)


def test_replicas_in_separate_processes_converge(redis_url: str, data_dir: Path) -> None:
    writes, count = 40, 3
    out, go = CTX.Queue(), CTX.Barrier(count + 1)
    procs = [CTX.Process(target=_replica_process, args=(redis_url, str(data_dir), i, writes, writes * 2 * count,
                                                        out, go))
             for i in range(count)]
    for p in procs:
        p.start()
    go.wait(60)
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(10)
    version, models, logs = _redis_view(redis_url, data_dir)
    for _index, v, m, lg in results:
        assert v == version
        assert m == models
        assert lg == logs
    assert len(models) == 21 and version >= 240


def test_client_kill_and_restart_lose_no_update(redis_server: RedisServer, redis_url: str,
                                                data_dir: Path) -> None:
    settings = _settings(redis_url, data_dir)
    replicas = [Controller(settings) for _ in range(2)]
    writer = Controller(settings)
    admin = redis.Redis.from_url(redis_url)
    for i in range(60):
        writer.download_model(f"org/m{i}")
        if i == 20:
            admin.client_kill_filter(_type="pubsub")
        if i == 40:
            redis_server.restart()  # append-only persistence keeps every acknowledged write
    _wait_converged([*replicas, writer], redis_url, data_dir)
    assert len(replicas[0].fetch_models()) == 60
    for c in [*replicas, writer]:
        c.close()


def test_cold_start_from_json_when_redis_is_empty(redis_url: str, data_dir: Path) -> None:
    settings = _settings(redis_url, data_dir)
    first = Controller(settings, listen=False)
    first.download_model("org/a")
    first.cancel_download("org/a")  # significant event: snapshot written
    version = first.version
    redis.Redis.from_url(redis_url).flushall()
    assert seed_configured(settings)  # what `serve`, a worker and every command do first
    second = Controller(settings, listen=False)
    assert second.version == version
    assert second.fetch_models()[0]["status"] == "cancelled"
    assert "state rebuilt from controller_state.json" in second.get_logs()[-1]


def test_corrupt_json_is_moved_aside_with_a_clear_error(redis_url: str, data_dir: Path) -> None:
    from app.core.errors import StateFileCorruptError

    state_file = data_dir / "controller_state.json"
    state_file.write_text("{not json")
    with pytest.raises(StateFileCorruptError, match="moved to"):
        seed_configured(_settings(redis_url, data_dir))
    aside = list(data_dir.glob("controller_state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{not json"
    assert seed_configured(_settings(redis_url, data_dir))  # the next start: no file, an empty list
    assert Controller(_settings(redis_url, data_dir), listen=False).fetch_models() == []


def test_older_snapshot_never_replaces_a_newer_one(redis_url: str, data_dir: Path) -> None:
    controller = Controller(_settings(redis_url, data_dir), listen=False)
    controller.download_model("org/a")
    path = data_dir / "controller_state.json"
    assert persist(controller.store, path)
    newer = json.loads(path.read_text())["version"]
    assert not write_file(path, json.dumps({"format": 1, "version": newer - 1, "models": {}}), newer - 1)
    assert json.loads(path.read_text())["version"] == newer
    assert json.loads(controller.redis.get(controller.keys.snapshot))["version"] == newer
    assert not controller.store.save_snapshot(json.dumps({"version": newer - 1}), newer - 1)


_WRITER = """
import json, sys
from pathlib import Path
from app.core.snapshot import write_file
path = Path(sys.argv[1])
big = {f"org/m{i}": {"pad": "x" * 200} for i in range(2000)}
v = int(sys.argv[2])
while True:
    write_file(path, json.dumps({"format": 1, "version": v, "models": big}), v)
    v += 1
"""


def _file_version(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["version"])
    except FileNotFoundError:
        return -1


def test_sigkill_while_writing_never_leaves_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "controller_state.json"
    for round_ in range(15):
        first = round_ * 1_000_000
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(first)], env={**os.environ})
        # kill only once this writer is in its loop (its start-up takes long on a loaded machine), at varied moments
        wait_until(lambda first=first: _file_version(path) >= first, 60, f"writer {round_} to write once")
        time.sleep((round_ % 5) * 0.07)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if path.exists():
            assert json.loads(path.read_text())["format"] == 1
    assert path.exists()
