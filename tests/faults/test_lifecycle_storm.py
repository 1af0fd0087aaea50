"""The lifecycle storm: 2 UI workers behind HAProxy, 2 download workers checking for updates every second, a Hub
whose branches keep moving, and 20 clients downloading, updating, pinning, unpinning and removing 12 repos under a
models quota that makes eviction remove idle unpinned models. Then quiesce: the page, Redis, the snapshot and the
disk agree, no pinned model was ever evicted, and the quota held."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import scan_cache_dir

from app.core.controller import Controller
from app.core.settings import Settings
from tests.hubserver import HubServer
from tests.support.storms import click_loop, replicas_equal_redis, settle, ui_stack
from tests.support.waiting import wait_snapshot, wait_status

pytestmark = pytest.mark.slow

REPOS = [f"life/m{i:02d}" for i in range(12)]
CLIENTS = 20
STORM_SECONDS = float(os.environ.get("MODELDEPOT_STORM_SECONDS", "20"))
SIZE = 150_000
QUOTA = 8 * SIZE + SIZE // 2  # 8 of the 12 fit: the storm's downloads and updates must evict
FILLED = 8

_REPO = r"life/m\d\d"
REFUSALS = [
    rf"{_REPO} is not in the list; check the name with `modeldepot ls`\.",
    rf"{_REPO} is being removed; wait until it is gone, then download again\.",
    rf"{_REPO} is being removed; it cannot be pinned or unpinned\.",
    rf"{_REPO} is (queued|downloading|failed|cancelled|removing|paused); only a ready model can be updated\. Wait "
    r"until it is ready \(or Retry it\) and update it then\.",
    rf"{_REPO} is (ready|failed|removing) ?; it cannot become \w+ now\. Refresh the list and try again\.",
]


def _client_loop(url: str, seed: int, deadline: float, results: Counter[str], refused: Counter[str],
                 lock: threading.Lock) -> None:
    def record(action: str, status: int | str, error: str | None, _sent_at: float) -> None:
        with lock:
            results[f"{action}:{status}"] += 1
            if error is not None and not any(re.fullmatch(p, error) for p in REFUSALS):
                refused[f"{action}: {error}"] += 1

    actions = {"download_model": 6, "update_model": 3, "pin_model": 2, "unpin_model": 2, "remove_model": 1,
               "check_updates": 1}
    click_loop(url, seed, deadline, repos=REPOS, actions=actions, pause=(0.05, 0.3), record=record)


def _move_branches(hub: HubServer, deadline: float, moved: Counter[str]) -> None:
    rng = random.Random(7)
    while time.monotonic() < deadline:
        repo = rng.choice(REPOS)
        hub.update_file(repo, "model.bin", SIZE + rng.randrange(0, 20_000))
        moved[repo] += 1
        time.sleep(0.4)


def _pins_never_evicted(logs: list[str]) -> list[str]:
    """Replay the log in order: every eviction must name a model that was unpinned at that moment."""
    pinned: set[str] = set()
    wrong = []
    for line in logs:
        if match := re.search(rf": (pinned|unpinned) ({_REPO})$", line):
            (pinned.add if match[1] == "pinned" else pinned.discard)(match[2])
        elif (match := re.search(rf"modeldepot \(quota\): evicting ({_REPO}) ", line)) and match[1] in pinned:
            wrong.append(line)
        elif match := re.search(rf": (removed|evicted) ({_REPO}),", line):
            pinned.discard(match[2])
    return wrong


@pytest.fixture
def lifecycle_stack(settings_env: Settings, hub: HubServer, start_worker: Any, tmp_path: Path,
                    worker_env: dict[str, str]) -> Any:
    for i, repo in enumerate(REPOS):
        hub.add_repo(repo, {"config.json": b'{"i": %d}' % i, "model.bin": SIZE})
    hub.throttle_bps = 4_000_000
    worker_env.update({"MODELDEPOT_MODELS_QUOTA": str(QUOTA), "MODELDEPOT_EVICT": "true",
                       "MODELDEPOT_EVICT_MIN_IDLE_S": "0", "MODELDEPOT_UPDATE_CHECK_S": "1",
                       "MODELDEPOT_USAGE_SCAN_S": "1"})
    with ui_stack(worker_env, tmp_path, 2) as (uis, balancer):
        start_worker()
        start_worker()
        _fill_to_the_quota(settings_env, hub)
        yield uis, balancer


def _fill_to_the_quota(settings: Settings, hub: HubServer) -> None:
    """Start the storm with the quota full and every branch moved, so whatever the machine's speed, the storm's
    downloads must evict and its updates must fetch."""
    with Controller(settings) as controller:
        for repo in REPOS[:FILLED]:
            controller.download_model(repo)
        for repo in REPOS[:FILLED]:
            wait_status(controller, repo, {"ready"})
    for repo in REPOS:
        hub.update_file(repo, "model.bin", SIZE + 1)


@pytest.mark.timeout(STORM_SECONDS + 240)
def test_lifecycle_storm_ends_with_page_redis_snapshot_and_disk_in_agreement(
        lifecycle_stack: Any, settings_env: Settings, hub: HubServer) -> None:
    uis, balancer = lifecycle_stack
    results: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    moved: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + STORM_SECONDS
    threads = [threading.Thread(target=_client_loop, args=(balancer.url, i, deadline, results, unexpected, lock))
               for i in range(CLIENTS)]
    threads.append(threading.Thread(target=_move_branches, args=(hub, deadline, moved)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=STORM_SECONDS + 60)
    assert sum(results.values()) > CLIENTS * 3, results
    assert not [k for k in results if not k.endswith((":200", ":500"))], results
    assert not unexpected, f"500s that are no refusal of the action: {dict(unexpected)}"

    truth = Controller(settings_env, listen=False)

    settle(truth)
    replicas_equal_redis(uis, truth)  # the workers' checks and usage scans go on writing meanwhile
    redis_models = truth.fetch_models()

    final = {m["name"]: (m["status"], m["commit"], m["pinned"]) for m in redis_models}
    wait_snapshot(settings_env.resolved_state_file,
                  lambda doc: {n: (m["status"], m["commit"], m["pinned"]) for n, m in doc["models"].items()}
                  == final)

    models_dir = settings_env.resolved_models_dir
    on_disk = {(repo.repo_id, rev.commit_hash) for repo in scan_cache_dir(models_dir).repos for rev in repo.revisions}
    ready = {(m["repo_id"], m["commit"]) for m in redis_models if m["status"] == "ready"}
    assert on_disk == ready  # updated models kept only their new revision; removed and evicted ones are gone
    assert not list(models_dir.rglob("*.incomplete"))
    assert sum(p.stat().st_size for p in models_dir.glob("*/blobs/*")) <= QUOTA

    logs = truth.get_logs()
    assert not _pins_never_evicted(logs)
    evictions = sum("modeldepot (quota): evicted" in line for line in logs)
    updates = sum(re.search(rf"updated {_REPO} from", line) is not None for line in logs)
    assert evictions and updates, (evictions, updates)
    statuses = Counter(m["status"] for m in redis_models)
    print(f"lifecycle storm: {sum(results.values())} requests {dict(results)}; branches moved "
          f"{sum(moved.values())}; {updates} updates, {evictions} evictions; final {dict(statuses)}")
