"""Soak run: the fault suite's storm (3 UI workers behind HAProxy, 2 download workers, 50 clients, a Redis
restart half way) for longer than CI can afford, with every end-of-storm check.

    python bench/soak.py --minutes 5

Prints the storm's summary line (requests by action and answer, final statuses, hub GETs) and pytest's verdict.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    env = {**os.environ, "MODELDEPOT_STORM_SECONDS": str(seconds)}
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
               "tests/faults/test_storm.py"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
