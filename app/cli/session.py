"""What a command stands on: its settings, a depot (a checked Redis connection and a seeded controller, or the HTTP
API when MODELDEPOT_URL or ``--url`` is set), the user it acts as.

Everything heavy is imported where it is used, so that `modeldepot --help` stays fast.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    import redis

    from app.cli.depot import Depot
    from app.cli.remote import RemoteDepot
    from app.core.settings import Settings
    from app.core.store import Store


@dataclass(frozen=True)
class RootOptions:
    """``modeldepot --url … --token …``: they win over MODELDEPOT_URL and MODELDEPOT_TOKEN."""

    url: str | None = None
    token: SecretStr | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> RootOptions:
        """From the root command's parsed parameters."""
        token = params.get("token")
        return cls(params.get("url"), SecretStr(token) if token else None)


ROOT_OPTIONS: ContextVar[RootOptions | None] = ContextVar("root_options", default=None)
"""The root options of the command being run (set around it by app/cli/main.py's group)."""


def cli_settings() -> Settings:
    """The settings, ``--url`` and ``--token`` applied; with no Redis URL, the Redis a `modeldepot serve` in the same
    data dir started (the server-side commands use it even when an API URL is set).

    Raises:
        ConfigError: an environment variable holds a value that cannot be used.
    """
    from app.core.embedded import existing_socket
    from app.core.settings import get_settings

    settings = get_settings()
    options = ROOT_OPTIONS.get() or RootOptions()
    if options.url is not None or options.token is not None:
        settings = settings.model_copy(update={"url": options.url or settings.url,
                                               "token": options.token or settings.token})
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
    from app.core import connection

    return connection.connect_checked(settings)


@contextlib.contextmanager
def open_controller(*, listen: bool = False) -> Iterator[Depot]:
    """The depot every command uses: the HTTP API when a URL is set (no Redis is touched), else a controller on
    the checked and seeded Redis. ``listen`` only when the command follows live changes.

    Following ends on Ctrl-C, so with ``listen`` SIGINT only sets the flag the follow loop looks at (see
    app/cli/follow.py) from before connecting until after the listener stopped: it never lands in between.
    """
    from app.cli.follow import catching_interrupts

    with catching_interrupts() if listen else contextlib.nullcontext():
        settings = cli_settings()
        if settings.url is not None:
            with open_remote(settings, listen=listen) as remote:
                yield remote
            return
        from app.core.controller import Controller

        connection = connect_checked(settings)
        seed(connection, settings)
        controller = Controller(settings, connection, listen=listen)
        try:
            yield controller
        finally:
            controller.close(wait=False)  # the command ends here: no need to wait out the listener's read


def open_remote(settings: Settings, *, listen: bool = False) -> RemoteDepot:
    """The depot over the HTTP API of ``settings.url``, with ``settings.token``."""
    from app.cli.remote import RemoteDepot

    assert settings.url is not None
    return RemoteDepot(settings.url, settings.token, settings=settings, listen=listen)


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
