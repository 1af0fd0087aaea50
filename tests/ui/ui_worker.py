"""Run one UI worker for tests and benchmarks: ``python -m tests.ui.ui_worker --port N``.

Settings come from the environment (``MODELDEPOT_*``), as in production; it binds 127.0.0.1 only. The app is
composed as `modeldepot serve` composes it: ops routes (/healthz, /readyz, /metrics) first, then the page.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastapi import FastAPI

from app.core.controller import Controller
from app.web.app import create_app


def build_app(controller: Controller) -> FastAPI:
    return create_app(controller, controller.settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    controller = Controller()
    try:
        uvicorn.run(build_app(controller), host="127.0.0.1", port=args.port, log_level=args.log_level,
                    timeout_graceful_shutdown=2)
    finally:
        controller.close()


if __name__ == "__main__":
    main()
