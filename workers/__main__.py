"""`python -m workers`: one RQ worker on Model Depot's queues (what `modeldepot worker` starts).

The command line starts workers through this entry point instead of importing them, so the web front end and
the command line never import the workers' code (the layers in pyproject.toml's import-linter contracts).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys

from app.core.errors import ModelDepotError
from workers.worker import QUEUE_KINDS, run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", default=",".join(QUEUE_KINDS), help="comma-separated: downloads, maintenance")
    parser.add_argument("--name", default=None, help="worker name (default: a random id)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    args = parser.parse_args(argv)
    kinds = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(kinds) - set(QUEUE_KINDS))
    if unknown or not kinds:
        parser.error(f"unknown queue {', '.join(unknown) or '(none)'}; use downloads, maintenance or both")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: a stuck worker's stacks, in its log
    try:
        run_worker(kinds, burst=args.burst, name=args.name)
    except ModelDepotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
