"""Real servers for the UI tests: UI workers (in a thread or as processes) and HAProxy in front of them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.redis_server import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy.cfg"
_WORKERS_BLOCK = re.compile(r"( *)# BEGIN ui-workers\n.*?# END ui-workers\n", re.S)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


class ThreadServer:
    """uvicorn serving an ASGI app in a thread of the test process (127.0.0.1, free port)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, "uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class UiWorkerProcess:
    """`python -m tests.ui.ui_worker` (the production app composition) as a child process."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str, port: int | None = None) -> None:
        self.env = env
        self.name = name
        self.port = port or free_port()
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UiWorkerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.ui.ui_worker", "--port", str(self.port)],
                                         cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60) -> UiWorkerProcess:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"UI worker {self.name} exited; see {self.log_path}")
            return _answers(self.url + "/healthz")

        wait_until(ready, timeout, f"UI worker {self.name}", interval=0.2)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def render_haproxy(servers: list[tuple[str, int]], *, port: int, stats_port: int) -> str:
    """deploy/haproxy.cfg with our workers and ports."""
    text = HAPROXY_TEMPLATE.read_text()
    match = _WORKERS_BLOCK.search(text)
    assert match, "deploy/haproxy.cfg lost its BEGIN/END ui-workers markers"
    indent = match.group(1)
    lines = "".join(f"{indent}server {name} 127.0.0.1:{p} check\n" for name, p in servers)
    text = text[: match.start()] + lines + text[match.end():]
    text = text.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{port}")
    return text.replace("bind 127.0.0.1:8404", f"bind 127.0.0.1:{stats_port}")


class Balancer:
    """HAProxy (foreground) with the rendered deploy/haproxy.cfg."""

    def __init__(self, servers: list[tuple[str, int]], directory: Path) -> None:
        self.port = free_port()
        self.stats_port = free_port()
        self.config = directory / "haproxy.cfg"
        self.config.write_text(render_haproxy(servers, port=self.port, stats_port=self.stats_port))
        self.log_path = directory / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.path.exists(p)), None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Balancer:
        binary = self.binary()
        assert binary, "haproxy is not installed"
        check = subprocess.run([binary, "-c", "-f", str(self.config)], capture_output=True, timeout=10)
        assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(self.config)], stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_until(lambda: _answers(self.url + "/healthz"), 20, "haproxy to serve")
        return self

    def server_states(self) -> dict[str, str]:
        """Server name -> UP/DOWN/... from the stats page (CSV)."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/;csv", timeout=2).text
        states = {}
        for line in text.splitlines():
            cols = line.split(",")
            if len(cols) > 17 and cols[0] == "ui_workers" and cols[1] not in ("BACKEND", "FRONTEND"):
                states[cols[1]] = cols[17]
        return states

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
