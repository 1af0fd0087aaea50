"""`modeldepot` command line (typer)."""

from __future__ import annotations

import logging

import typer

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Model Depot: a team's shared model manager.")


@cli.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to bind."),
          port: int = typer.Option(7860, help="Port to bind.")) -> None:
    """Run a UI worker. With no MODELDEPOT_REDIS_URL, also start redis-server and download workers.

    Example: modeldepot serve --port 7860
    """
    from app.runtime import serve as run

    run(host, port)


@cli.command()
def worker(queues: str = typer.Option("maintenance,downloads", help="Comma-separated: downloads, maintenance."),
           name: str | None = typer.Option(None, help="Worker name (default: host.pid)."),
           burst: bool = typer.Option(False, help="Exit when the queues are empty.")) -> None:
    """Run an RQ worker for downloads and removals (several may run on several hosts).

    Example: MODELDEPOT_REDIS_URL=redis://redis:6379/0 modeldepot worker
    """
    from workers.worker import run_worker

    run_worker([q.strip() for q in queues.split(",") if q.strip()], burst=burst, name=name)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cli()


if __name__ == "__main__":
    main()
