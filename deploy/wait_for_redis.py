"""Wait until MODELDEPOT_REDIS_URL answers PING; exit 1 after WAIT_FOR_REDIS_TIMEOUT seconds (default 30).

Used by deploy/Procfile so UI and download workers do not race redis-server at start (honcho stops every
process as soon as one exits).
"""

from __future__ import annotations

import os
import sys
import time

import redis

from app.core.connection import BRIEF_S, connect
from app.core.errors import ModelDepotError
from app.core.settings import get_settings


def main() -> int:
    url = os.environ.get("MODELDEPOT_REDIS_URL", "")
    if not url:
        print("wait_for_redis: MODELDEPOT_REDIS_URL is not set", file=sys.stderr)
        return 1
    deadline = time.monotonic() + float(os.environ.get("WAIT_FOR_REDIS_TIMEOUT", "30"))
    try:
        client = connect(get_settings(), patience_s=BRIEF_S)  # any URL form, Sentinel's too
    except ModelDepotError as e:
        print(f"wait_for_redis: {e}", file=sys.stderr)
        return 1
    while time.monotonic() < deadline:
        try:
            client.ping()
            return 0
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.2)
    print("wait_for_redis: Redis did not answer in time; is redis-server running?", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
