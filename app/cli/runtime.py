"""Process wiring for `modeldepot serve` and `modeldepot worker`: Redis (embedded or not), workers, UI."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.core.embedded import EmbeddedRedis, die_with_parent
from app.core.settings import Settings, get_settings, reset_settings

log = logging.getLogger(__name__)


@dataclass
class Stack:
    """What `serve` started besides the UI, stopped in reverse order on exit."""

    settings: Settings
    redis: EmbeddedRedis | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.redis is not None:
            self.redis.stop()


def spawn_worker(kinds: str, *, name: str | None = None) -> subprocess.Popen[bytes]:
    """A `modeldepot worker` child that dies with this process."""
    args = [sys.executable, "-m", "workers", "--queues", kinds]
    if name:
        args += ["--name", name]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


@contextlib.contextmanager
def embedded_stack(*, start_workers: bool = True) -> Iterator[Stack]:
    """Start redis-server and workers when no Redis URL is configured (the README's one-command run)."""
    settings = get_settings()
    stack = Stack(settings)
    try:
        if settings.embedded:
            stack.redis = EmbeddedRedis(settings.data_dir).start()
            os.environ["MODELDEPOT_REDIS_URL"] = stack.redis.url  # shared with the workers we start
            reset_settings()
            stack.settings = get_settings()
            if start_workers:
                stack.workers.append(spawn_worker("downloads", name=None))
                stack.workers.append(spawn_worker("maintenance", name=None))
        yield stack
    finally:
        stack.stop()


def serve(host: str, port: int) -> None:
    """Run one UI worker (plus, in the embedded default, Redis and two workers) until interrupted."""
    import uvicorn

    from app.core.controller import Controller
    from app.core.seeding import seed_configured
    from app.web.app import create_app

    with embedded_stack() as stack:
        seed_configured(stack.settings)  # an empty Redis gets controller_state.json before the UI starts
        controller = Controller(stack.settings)
        try:
            app = create_app(controller, stack.settings)
            log.info("Model Depot UI on http://%s:%d", host, port)
            uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
        finally:
            controller.close()
