"""The page in a real browser (Debian's chromium through Playwright).

The main test runs the whole stack: the local fake Hub, a download worker, two UI worker processes behind
HAProxy with the shipped deploy/haproxy.cfg, and two browser contexts. Page requests are balanced round
robin (asserted from HAProxy's X-Served-By header), so it also proves the page needs no stickiness.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.settings import Settings
from app.core.units import human_bytes
from tests.hubserver import HubServer
from tests.redis_server import RedisServer
from tests.support.waiting import wait_until
from tests.support.workers import WorkerProcess
from tests.ui.conftest import PASSWORDS
from tests.ui.servers import Balancer, UiWorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BIG = 24_000_000  # huggingface_hub writes in 10 MB chunks: progress moves at 10 and 20 MB
THROTTLE_BPS = 4_000_000
BIG_SHOWN = human_bytes(BIG)


def row(name: str) -> str:
    return f'#md-table tr[data-name="{name}"]'


class Stack:
    """Hub, download worker, UI workers and the balancer, all on 127.0.0.1."""

    def __init__(self, tmp_path: Path, ui_count: int) -> None:
        self.dir = tmp_path
        self.hub = HubServer().start()
        env = {**os.environ, "HF_ENDPOINT": self.hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "5",
               "HF_HUB_DOWNLOAD_TIMEOUT": "5", "GRADIO_ANALYTICS_ENABLED": "False"}
        self.worker = WorkerProcess(env, tmp_path)
        self.uis = [UiWorkerProcess(env, tmp_path, f"ui{i + 1}").start() for i in range(ui_count)]
        for ui in self.uis:
            ui.wait_ready()
        self.balancer = Balancer([(ui.name, ui.port) for ui in self.uis], tmp_path).start()
        wait_until(lambda: set(self.balancer.server_states().values()) == {"UP"}, 20, "workers UP in haproxy")

    def stop(self) -> None:
        self.balancer.stop()
        for ui in self.uis:
            ui.stop()
        self.worker.stop()
        self.hub.stop()


@pytest.fixture
def stack(ui_settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    started = Stack(tmp_path, ui_count=2)
    yield started
    started.stop()


def open_page(browser: Any, url: str, served: list[str]) -> Any:
    """A fresh browser context on ``url``; the X-Served-By of each page event is appended to ``served``."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)

    def note(response: Any) -> None:
        if "/gradio_api/run/" in response.url and response.headers.get("x-served-by"):
            served.append(response.headers["x-served-by"])


    page.on("response", note)
    page.goto(url)
    page.wait_for_selector("#md-table .md-empty, #md-table table")
    return page


def progress_of(page: Any, name: str) -> int:
    bar = page.query_selector(f'{row(name)} [role="progressbar"]')
    return int(bar.get_attribute("aria-valuenow")) if bar else -1


@pytest.mark.timeout(240)
def test_two_users_on_two_workers_behind_the_balancer(stack: Stack, browser: Any, artifacts: Path,
                                                       gradio_client: Callable[..., Any]) -> None:
    stack.hub.add_repo("org/big", {"config.json": b'{"hidden_size": 8}', "model.safetensors": BIG})
    stack.hub.throttle_bps = THROTTLE_BPS
    served_a: list[str] = []
    served_b: list[str] = []
    page_a = open_page(browser, stack.balancer.url, served_a)
    page_b = open_page(browser, stack.balancer.url, served_b)
    assert "Download a model with the form above, e.g. Qwen/Qwen2.5-0.5B-Instruct" in page_b.inner_text("#md-table")

    # A starts a download; B sees it progress and finish without reloading.
    page_a.fill("#md-repo textarea, #md-repo input", "org/big")
    page_a.fill("#md-include textarea", "*.safetensors\n*.json")
    page_a.click("#md-download")
    page_a.wait_for_selector("#md-action-status .md-ok")
    assert page_a.inner_text("#md-action-status") == "Queued org/big."
    page_b.wait_for_selector(f'{row("org/big")}[data-status="downloading"]')
    try:
        wait_until(lambda: 0 < progress_of(page_b, "org/big") < 100, 30, "a partial progress bar in B")
    except AssertionError:
        page_b.screenshot(path=str(artifacts / "b-no-progress.png"), full_page=True)
        raise
    text = page_b.inner_text(f'{row("org/big")} .md-progress-text')
    assert re.search(rf"\d+% · [\d.]+ MB / {BIG_SHOWN} · [\d.]+ [kM]B/s · ETA \d+s · [01]/2 files", text), text
    page_b.screenshot(path=str(artifacts / "b-progress.png"), full_page=True)
    page_b.wait_for_selector(f'{row("org/big")}[data-status="ready"]', timeout=60_000)
    assert BIG_SHOWN in page_b.inner_text(row("org/big"))
    page_a.wait_for_selector(f'{row("org/big")}[data-status="ready"]')

    # B removes it, after a confirmation that states the bytes freed; A sees it go.
    page_b.click(row("org/big"))
    selected = "#md-select textarea, #md-select input"
    wait_until(lambda: page_b.input_value(selected) == "org/big", 10, "the row to be selected")
    page_b.click("#md-remove")
    page_b.wait_for_selector("#md-confirm-text", state="visible")
    assert f"Remove org/big? This deletes its files and frees {BIG_SHOWN}" in page_b.inner_text("#md-confirm")
    page_b.screenshot(path=str(artifacts / "b-confirm-remove.png"), full_page=True)
    page_b.click("#md-confirm-yes")
    page_a.wait_for_selector(row("org/big"), state="detached", timeout=30_000)
    wait_until(lambda: "removed org/big" in page_a.inner_text("#md-logs"), 15, "the log to follow")
    page_a.screenshot(path=str(artifacts / "a-removed.png"), full_page=True)

    # No stickiness: each page's events went to both workers.
    assert {"ui1", "ui2"} <= set(served_a), served_a
    assert {"ui1", "ui2"} <= set(served_b), served_b

    # gradio_client uses Gradio's queue (a join, then an event stream): the balancer keeps both on one
    # worker by hashing the client's session, so every call succeeds with two workers behind it.
    stack.hub.add_repo("org/via-client", {"weights.bin": 40_000_000})
    client = gradio_client(stack.balancer.url)
    for _ in range(6):
        assert client.predict(api_name="/fetch_models") == []
    assert client.predict("org/via-client", api_name="/download_model")["changed"] is True
    page_a.wait_for_selector(row("org/via-client"))
    assert client.predict("org/via-client", api_name="/cancel_download")["message"].startswith("Cancel")
    page_b.wait_for_selector(f'{row("org/via-client")}[data-status="cancelled"]', timeout=30_000)
    client.predict("org/via-client", api_name="/remove_model")
    page_a.wait_for_selector(row("org/via-client"), state="detached", timeout=30_000)

    # A UI worker dies: both pages go on with the other one, with the same state.
    stack.uis[0].kill()
    page_b.fill("#md-repo textarea, #md-repo input", "org/missing")
    page_b.click("#md-download")
    page_a.wait_for_selector(f'{row("org/missing")}[data-status="failed"]', timeout=40_000)
    assert "not found" in page_a.inner_text(row("org/missing")).lower()  # the reason, in the row
    wait_until(lambda: stack.balancer.server_states().get("ui1") == "DOWN", 10, "haproxy to mark ui1 down")
    served_a.clear()
    page_a.reload()
    page_a.wait_for_selector(row("org/missing"))
    assert page_a.inner_text("#md-table") == page_b.inner_text("#md-table")
    assert set(served_a) == {"ui2"}
    page_a.screenshot(path=str(artifacts / "a-after-failover.png"), full_page=True)
    page_a.context.close()
    page_b.context.close()


def test_bad_input_and_viewer_role_in_the_page(ui_settings: Settings, users_file: Path,
                                               serve_ui: Callable[..., Any], browser: Any,
                                               artifacts: Path) -> None:
    server, controller = serve_ui(ui_settings.model_copy(update={"auth_file": users_file}))
    controller.download_model("org/ready", requested_by="alice")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(server.url + "/")
    page.wait_for_url(re.compile(r"/login\?next=/$"))
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.inner_text("[role=alert]")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", PASSWORDS["bob"])
    page.click("button[type=submit]")
    page.wait_for_selector(row("org/ready"))
    assert "Signed in as bob (viewer)" in page.inner_text("#md-user")
    for button in ("#md-download", "#md-remove", "#md-cancel", "#md-retry", "#md-update", "#md-pin", "#md-unpin",
                   "#md-check", "#md-check-all"):
        assert page.is_disabled(button), button
    page.screenshot(path=str(artifacts / "viewer.png"), full_page=True)
    page.goto(server.url + "/logout")
    page.wait_for_url(re.compile(r"/login$"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORDS["alice"])
    page.click("button[type=submit]")
    page.wait_for_selector(row("org/ready"))
    page.fill("#md-repo textarea, #md-repo input", "Qwen/Qwen2.5 0.5B")
    page.click("#md-download")
    page.wait_for_selector("#md-action-status [role=alert]")
    message = page.inner_text("#md-action-status")
    assert "is not valid" in message and "e.g. Qwen/Qwen2.5-0.5B-Instruct" in message
    page.click(row("org/ready"))
    page.click("#md-retry")
    page.wait_for_selector("#md-action-status [role=alert]")
    assert "only failed or cancelled downloads can be retried" in page.inner_text("#md-action-status")
    page.click("#md-pin")
    page.wait_for_selector(f"{row('org/ready')} .md-badge-pin")
    assert page.inner_text("#md-action-status").startswith("Pinned org/ready")
    page.click("#md-update")
    page.wait_for_selector("#md-action-status [role=alert]")
    assert "only a ready model can be updated" in page.inner_text("#md-action-status")
    page.fill("#md-filter textarea, #md-filter input", "nothing-like-this")
    page.wait_for_selector("#md-table .md-empty")
    page.fill("#md-log-filter textarea, #md-log-filter input", "alice")
    page.wait_for_selector("#md-logs li")
    assert "alice: queued download of org/ready" in page.inner_text("#md-logs")
    page.screenshot(path=str(artifacts / "admin-errors.png"), full_page=True)
    context.close()


@pytest.mark.timeout(120)
def test_stale_banner_while_redis_is_down(ui_settings: Settings, serve_ui: Callable[..., Any], browser: Any,
                                          redis_server: RedisServer, artifacts: Path) -> None:
    server, controller = serve_ui(ui_settings.model_copy(update={"redis_retry_s": 1.0}))  # a click then fails in 1 s
    controller.download_model("org/kept")
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(server.url + "/")
    page.wait_for_selector(row("org/kept"))
    assert page.query_selector("#md-stale .md-stale-box") is None
    redis_server.kill()
    try:
        page.wait_for_selector("#md-stale .md-stale-box", timeout=30_000)
        assert "stale: Redis unreachable, showing last known state" in page.inner_text("#md-stale")
        assert page.is_visible(row("org/kept"))
        page.screenshot(path=str(artifacts / "stale.png"), full_page=True)
        page.click(row("org/kept"))
        page.click("#md-cancel")
        page.wait_for_selector("#md-action-status [role=alert]")
        assert "Redis (the shared state) is unreachable" in page.inner_text("#md-action-status")
    finally:
        redis_server.start()
    page.wait_for_selector("#md-stale .md-stale-box", state="detached", timeout=30_000)
    page.close()
