"""What a command stands on: its settings, a checked Redis connection, a seeded controller, the user it acts as.

Everything heavy is imported where it is used, so that `modeldepot --help` stays fast.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

    from app.core.controller import Controller
    from app.core.settings import Settings
    from app.core.store import Store


def cli_settings() -> Settings:
    """The settings; with no Redis URL, the Redis a `modeldepot serve` in the same data dir started.

    Raises:
        ConfigError: an environment variable holds a value that cannot be used.
    """
    from app.core.embedded import existing_socket
    from app.core.settings import get_settings

    settings = get_settings()
    if settings.redis_url is None:
        embedded_socket = existing_socket(settings.data_dir)
        if embedded_socket is not None:
            return settings.model_copy(update={"redis_url": f"unix://{embedded_socket}"})
    return settings


def connect_checked(settings: Settings) -> redis.Redis:
    """A connection to the configured Redis that answered a ping.

    Raises:
        ConfigError: no Redis URL, or Redis refused the password.
        StateUnavailableError: Redis does not answer.
    """
    from app.core.connection import check, connect

    connection = connect(settings)
    check(connection)
    return connection


@contextlib.contextmanager
def open_controller(*, listen: bool = False) -> Iterator[Controller]:
    """The controller every command uses; ``listen`` only when the command follows live changes.

    Following ends on Ctrl-C, so with ``listen`` SIGINT only sets the flag the follow loop looks at (see
    app/cli/follow.py) from before connecting until after the listener stopped: it never lands in between.
    """
    from app.cli.follow import catching_interrupts
    from app.core.controller import Controller

    with catching_interrupts() if listen else contextlib.nullcontext():
        settings = cli_settings()
        connection = connect_checked(settings)
        seed(connection, settings)
        with Controller(settings, connection, listen=listen) as controller:
            yield controller


def seed(connection: redis.Redis, settings: Settings) -> None:
    """An empty Redis gets ``controller_state.json`` before a command reads or writes it (as `serve` does)."""
    from app.core.seeding import seed_from_snapshot
    from app.core.store import Store

    seed_from_snapshot(Store.for_settings(connection, settings, sender=f"cli:{socket.gethostname()}"),
                       settings.resolved_state_file)


def current_user() -> str:
    """Who the event log names for a command run from this shell."""
    try:
        return f"{getpass.getuser()} (cli)"
    except (OSError, KeyError):
        return "cli"


def bare_store(settings: Settings) -> Store:
    """A store without a controller (see app/core/snapshot_io.py for why)."""
    from app.core.keys import Keys
    from app.core.store import Store

    return Store(
        connect_checked(settings),
        Keys(settings.key_prefix),
        log_size=settings.log_size,
        stream_size=settings.stream_size,
        sender=f"cli:{socket.gethostname()}:{os.getpid()}",
    )
