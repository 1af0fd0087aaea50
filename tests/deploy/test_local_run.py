"""deploy/local-run.sh for real: Redis, 2 UI workers, 1 download worker and HAProxy under honcho."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.redis_server import free_port

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local-run.sh"


def consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        base = free_port()
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise RuntimeError("no consecutive free ports")


@dataclass
class LocalRun:
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    ui_ports: list[int]
    lb_port: int

    def wait_ready(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        raise AssertionError(f"{url} not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def local_run(tmp_path: Path) -> Iterator[LocalRun]:
    ui_port = consecutive_free_ports(2)
    ports = {
        "MODELDEPOT_REDIS_PORT": free_port(),
        "MODELDEPOT_UI_PORT": ui_port,
        "MODELDEPOT_LB_PORT": free_port(),
        "MODELDEPOT_STATS_PORT": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPOT_")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(
        {
            "PYTHON": sys.executable,
            "UI_WORKERS": "2",
            "DOWNLOAD_WORKERS": "1",
            "MODELDEPOT_DATA_DIR": str(tmp_path / "data"),
            "HF_HUB_OFFLINE": "1",
        }
    )
    log = tmp_path / "local-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(SCRIPT)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    run = LocalRun(proc, log, env, [ui_port, ui_port + 1], ports["MODELDEPOT_LB_PORT"])
    try:
        yield run
    finally:
        run.stop()


def test_local_run(local_run: LocalRun) -> None:
    for port in local_run.ui_ports:
        local_run.wait_ready(f"http://127.0.0.1:{port}/readyz")
    metrics = httpx.get(f"http://127.0.0.1:{local_run.ui_ports[0]}/metrics", timeout=10).text
    names = {family.name for family in text_string_to_metric_families(metrics)}
    assert {"modeldepot_models", "modeldepot_queue_depth", "modeldepot_redis_up"} <= names
    assert httpx.get(f"http://127.0.0.1:{local_run.ui_ports[1]}/", timeout=10).status_code == 200  # the UI

    url = f"redis://127.0.0.1:{local_run.env['MODELDEPOT_REDIS_PORT']}/0"
    status = subprocess.run(
        [sys.executable, "-m", "app.cli", "status"],
        capture_output=True,
        text=True,
        env={**local_run.env, "MODELDEPOT_REDIS_URL": url},
        timeout=60,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "healthy" in status.stdout and "idle" in status.stdout

    if shutil.which("haproxy"):  # local-run.sh runs the balancer when haproxy is on PATH
        local_run.wait_ready(f"http://127.0.0.1:{local_run.lb_port}/healthz", timeout=30)
        assert httpx.get(f"http://127.0.0.1:{local_run.lb_port}/", timeout=10).status_code == 200

    assert local_run.stop() == 0 or "stopped" in local_run.log.read_text()
    for port in local_run.ui_ports:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
