"""What the storm tests share: the stack of UI workers behind HAProxy, the API call that reports a refusal's
message, and the settling that ends a storm with page = Redis = snapshot checks."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest
from huggingface_hub import scan_cache_dir

from app.core.controller import Controller
from app.core.records import RecordView
from app.core.settings import Settings
from tests.support.waiting import wait_snapshot, wait_until
from tests.ui.servers import Balancer, UiWorkerProcess

TRANSIENT = {"queued", "downloading", "removing"}


@contextlib.contextmanager
def ui_stack(env: dict[str, str], tmp_path: Path, count: int) -> Iterator[tuple[list[UiWorkerProcess], Balancer]]:
    """``count`` UI worker processes behind HAProxy (skipped without haproxy outside CI)."""
    if Balancer.binary() is None and not os.environ.get("CI"):
        pytest.skip("haproxy is not installed (apt-get install haproxy); CI installs it")
    ui_env = {**env, "GRADIO_ANALYTICS_ENABLED": "False"}
    uis = [UiWorkerProcess(ui_env, tmp_path, f"ui{i}").start() for i in range(count)]
    for ui in uis:
        ui.wait_ready()
    balancer = Balancer([(ui.name, ui.port) for ui in uis], tmp_path).start()
    try:
        yield uis, balancer
    finally:
        balancer.stop()
        for ui in uis:
            ui.stop()


def call(client: httpx.Client, url: str, name: str, *args: object) -> tuple[int, str | None]:
    """The status of one API call, and the error message of a 500 (its whole body if it has none)."""
    response = client.post(f"{url}/gradio_api/run/{name}", json={"data": list(args)}, timeout=30)
    if response.status_code != 500:
        return response.status_code, None
    try:
        return 500, str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return 500, response.text


def click_loop(url: str, seed: int, deadline: float, *, repos: Sequence[str], actions: Mapping[str, int],
               pause: tuple[float, float], record: Callable[[str, int | str, str | None, float], None]) -> None:
    """One client of a storm until ``deadline``: a random action (by weight) on a random repo, ``record``ed with
    its status (or the transport error's name), a 500's message and when it was sent, then a user's pause."""
    rng = random.Random(seed)
    names, weights = list(actions), list(actions.values())
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            repo = rng.choice(repos)
            action = rng.choices(names, weights)[0]
            args: list[object] = [repo, None, None, None] if action == "download_model" else [repo]
            error = None
            status: int | str
            sent_at = time.monotonic()
            try:
                status, error = call(client, url, action, *args)
            except httpx.HTTPError as e:
                status = type(e).__name__
            record(action, status, error, sent_at)
            time.sleep(rng.uniform(*pause))  # the load pattern, not a wait


def rq_idle(truth: Controller) -> bool:
    """No job waits in a queue or runs: no hook is left to change the state or write the snapshot."""
    queues = (truth.jobs.downloads, truth.jobs.maintenance)
    return all(queue.count == 0 and queue.started_job_registry.count == 0 for queue in queues)


def settle(truth: Controller, timeout: float = 90) -> None:
    """Wait until every model is in a final status and every job ended; ``truth`` then holds Redis's state."""
    def quiet() -> bool:
        truth.replica.reset(truth.store.read_state(), force=True)
        return not any(m["status"] in TRANSIENT for m in truth.fetch_models()) and rq_idle(truth)

    try:
        wait_until(quiet, timeout, "every model to reach a final status and every job to end", interval=0.5)
    except AssertionError:
        stuck = [(m["name"], m["status"], truth.jobs.status(m["job_id"] or ""))
                 for m in truth.fetch_models() if m["status"] in TRANSIENT]
        raise AssertionError(f"still transient: {stuck}") from None


def disk_and_snapshot_equal_redis(truth: Controller, settings: Settings) -> list[RecordView]:
    """After :func:`settle`: the JSON snapshot holds Redis's statuses, the revisions on disk are the ready ones, and
    no partial file is left. Returns Redis's records."""
    models = truth.fetch_models()
    finished = {m["name"]: m["status"] for m in models}
    # the JSON matches every final state (its last write may land just after the last event)
    wait_snapshot(settings.resolved_state_file,
                  lambda doc: {n: m["status"] for n, m in doc["models"].items()} == finished)
    on_disk = {(repo.repo_id, rev.commit_hash) for repo in scan_cache_dir(settings.resolved_models_dir).repos
               for rev in repo.revisions}
    assert on_disk == {(m["repo_id"], m["commit"]) for m in models if m["status"] == "ready"}
    assert not list(settings.resolved_models_dir.rglob("*.incomplete"))
    return models


def replicas_equal_redis(uis: list[UiWorkerProcess], truth: Controller) -> None:
    """Every UI worker's replica equals Redis (re-read each time: the workers' scans and checks may go on)."""
    with httpx.Client() as client:
        for ui in uis:
            def same(url: str = ui.url) -> bool:
                truth.replica.reset(truth.store.read_state(), force=True)
                response = client.post(f"{url}/gradio_api/run/fetch_models", json={"data": []}, timeout=30)
                return bool(response.json()["data"][0] == truth.fetch_models())

            wait_until(same, 20, f"{ui.name} to equal Redis", interval=0.5)
