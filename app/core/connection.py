"""Redis connections from the configured URL: one server (redis://, rediss://, unix://) or a Sentinel service.

Every client waits out a failover by itself. Commands that fail on a lost connection, a server still loading,
a demoted primary (``READONLY``) or a primary short of replicas (``NOREPLICAS``) are tried again, on a new
connection, for ``MODELDEPOT_REDIS_RETRY_S``; a Sentinel client asks the sentinels for the primary on every new
connection, and a plain one reconnects to the same address, where a managed endpoint now serves the new primary.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.connection import SSLConnection
from redis.exceptions import AuthorizationError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from app.core.errors import ConfigError, StateUnavailableError
from app.core.redis_url import SentinelTarget, is_sentinel, parse_sentinel_url, redact
from app.core.settings import Settings, get_settings

T = TypeVar("T")

BRIEF_S = 0.5
"""The patience of connections that must notice an outage rather than wait it out: the listener (its own
loop reconnects and reloads) and health checks (a probe that hangs for 30 s is no probe)."""

# A primary that vanished without a reset (its host died, a partition) is found dead in ~25 s, not Linux's 2 h: a
# blocked read (RQ's BLPOP) would otherwise wait on it and never learn of the failover.
_KEEPALIVE = {option: value for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
              if (option := getattr(socket, name, None)) is not None}
_RETRYABLE = (redis.ConnectionError, redis.TimeoutError, socket.timeout, redis.ResponseError)
# The error codes of a node whose role is changing (UNBLOCKED: a blocked BLPOP on a primary that became a
# replica); a script's or a transaction's error quotes them inside its own text.
_RETRYABLE_REPLY = re.compile(r"\b(?:READONLY|NOREPLICAS|MASTERDOWN|LOADING|UNBLOCKED)\b")


class PatientRetry(Retry):
    """redis-py's :class:`~redis.retry.Retry`, bounded by time instead of by a count of attempts.

    redis-py nests the connect's retries inside the command's, which multiplies a count but not a deadline;
    and what a failover costs is time (the sentinels' ``down-after-milliseconds`` plus an election), not a
    number of refused connections.
    """

    def __init__(self, patience_s: float) -> None:
        super().__init__(ExponentialWithJitterBackoff(cap=0.5, base=0.05), -1, _RETRYABLE)
        self.patience_s = patience_s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PatientRetry) and other.patience_s == self.patience_s

    __hash__ = Retry.__hash__

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        deadline = time.monotonic() + self.patience_s
        failures = 0
        while True:
            try:
                return do()
            except _RETRYABLE as error:
                if not retryable(error) or (is_retryable is not None and not is_retryable(error)):
                    raise
                failures += 1
                fail(error, failures) if with_failure_count else fail(error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                time.sleep(min(self._backoff.compute(failures), left))  # the last attempt at the deadline


class FollowingConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the sentinels again whenever it reconnects.

    redis-py 8.1 reconnects a dropped connection inside ``send_packed_command`` through ``connect_check_health``,
    which goes back to the address the connection had. After a failover that is the demoted primary, and every
    retry of the command meets ``READONLY`` there (seen in tests/faults/test_failover_storm.py).
    """

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


class FollowingSSLConnection(FollowingConnection, SSLConnection):
    """:class:`FollowingConnection` over TLS (``rediss+sentinel://``)."""


def retryable(error: BaseException) -> bool:
    """True for an error a later attempt can get past: the connection, or the node's role for the moment (not a
    refused password, which redis-py raises as a ConnectionError too)."""
    if isinstance(error, redis.AuthenticationError | AuthorizationError):
        return False
    if isinstance(error, redis.ResponseError):
        return isinstance(error, redis.ReadOnlyError) or _RETRYABLE_REPLY.search(str(error)) is not None
    return isinstance(error, _RETRYABLE)


def connect(settings: Settings | None = None, *, url: str | None = None,
            patience_s: float | None = None) -> redis.Redis:
    """A client for the configured Redis (not yet connected: redis-py connects lazily).

    ``patience_s`` is how long a command is retried through a failover; ``MODELDEPOT_REDIS_RETRY_S`` by default.

    Raises:
        ConfigError: no URL is configured and none was given, or the Sentinel URL does not parse.
    """
    settings = settings or get_settings()
    url = url or settings.redis_url
    if not url:
        raise ConfigError("No Redis URL: set MODELDEPOT_REDIS_URL, or run `modeldepot serve` to start one.")
    patience = settings.redis_retry_s if patience_s is None else patience_s
    options: dict[str, Any] = {"health_check_interval": 10, "socket_connect_timeout": 5,
                               "retry": PatientRetry(patience)}
    if not url.startswith("unix://"):
        options |= {"socket_keepalive": True, "socket_keepalive_options": _KEEPALIVE}
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    target = _target(url)
    client: redis.Redis = _sentinel(target, settings).master_for(  # type: ignore[no-untyped-call]
        target.service, redis_class=redis.Redis, **_node_login(target), **options)
    return client


def connect_checked(settings: Settings) -> redis.Redis:
    """:func:`connect`, once a brief ping answered: a Redis that is not there is said at once, not after the
    patience of a write.

    Raises:
        ConfigError: no URL, a bad Sentinel URL, or Redis refused the password.
        StateUnavailableError: Redis does not answer.
    """
    probe = connect(settings, patience_s=BRIEF_S)
    try:
        check(probe)
    finally:
        probe.close()
    return connect(settings)


def connect_async(settings: Settings, **options: Any) -> aredis.Redis:
    """An asyncio client for the configured Redis (the API's event stream), following a Sentinel's primary too.

    Raises:
        ConfigError: no URL is configured, or the Sentinel URL does not parse.
    """
    url = settings.redis_url
    if not url:
        raise ConfigError("No Redis URL: set MODELDEPOT_REDIS_URL.")
    if not is_sentinel(url):
        return aredis.Redis.from_url(url, **options)
    target = _target(url)
    login = _sentinel_login(target, settings) | {"retry": AsyncRetry(NoBackoff(), 0)}
    sentinel = aredis.Sentinel(target.sentinels, sentinel_kwargs=login)  # type: ignore[no-untyped-call]
    login = {"db": target.db, "username": target.username, "password": target.password, "ssl": target.ssl}
    client: aredis.Redis = sentinel.master_for(target.service, redis_class=aredis.Redis, **login, **options)
    return client


def sentinel_for(settings: Settings) -> Sentinel | None:
    """The sentinels of a Sentinel URL (status reports ask them who the primary is); None for other URLs."""
    url = settings.redis_url
    return _sentinel(_target(url), settings) if url and is_sentinel(url) else None


def _target(url: str) -> SentinelTarget:
    try:
        return parse_sentinel_url(url)
    except ValueError as e:
        raise ConfigError(f"MODELDEPOT_REDIS_URL={redact(url)!r} is invalid: {e}.") from e


def _sentinel(target: SentinelTarget, settings: Settings) -> Sentinel:
    login = _sentinel_login(target, settings) | {"retry": Retry(NoBackoff(), 0)}
    return Sentinel(list(target.sentinels), sentinel_kwargs=login,  # type: ignore[no-untyped-call]
                    socket_connect_timeout=5)


def _sentinel_login(target: SentinelTarget, settings: Settings) -> dict[str, Any]:
    """How to talk to the sentinels themselves: briefly and without retries, since a client asks the next sentinel
    when one does not answer (redis-py's default would wait seconds on a dead one)."""
    password = settings.redis_sentinel_password
    login: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 2, "ssl": target.ssl}
    if password is not None:
        login["password"] = password.get_secret_value()
    return login


def _node_login(target: SentinelTarget) -> dict[str, Any]:
    return {"db": target.db, "username": target.username, "password": target.password,
            "connection_class": FollowingSSLConnection if target.ssl else FollowingConnection}


def check(connection: redis.Redis) -> str:
    """Ping Redis; return its server version.

    Raises:
        ConfigError: Redis refused the user or password of the URL, or needs one the URL does not have.
        StateUnavailableError: Redis does not answer.
    """
    try:
        connection.ping()
        return str(connection.info("server").get("redis_version", "?"))
    except redis.AuthenticationError as e:  # first: it subclasses ConnectionError
        raise ConfigError(auth_refused(connection, e)) from e
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise StateUnavailableError(
            f"Cannot reach Redis at {connection_url(connection)}: {str(e).rstrip('.')}. "
            "Is redis-server running?"
        ) from e


def auth_refused(connection: redis.Redis, error: redis.AuthenticationError) -> str:
    """What to tell a user whose Redis refused to let them in, without repeating the password."""
    where = f"Redis at {connection_url(connection)}"
    if connection.connection_pool.connection_kwargs.get("password") is None:
        return (
            f"{where} requires a password and MODELDEPOT_REDIS_URL has none: "
            "set it as redis://:PASSWORD@host:port/db (or redis://USER:PASSWORD@host:port/db with an ACL user)."
        )
    return (
        f"{where} refused the user or password in MODELDEPOT_REDIS_URL ({str(error).rstrip('.')}): "
        "fix them in the URL, redis://USER:PASSWORD@host:port/db (or redis://:PASSWORD@host:port/db "
        "for the default user), and run again."
    )


def connection_url(connection: redis.Redis) -> str:
    """Where ``connection`` goes, without its password: a socket, an address, or a Sentinel service."""
    pool = connection.connection_pool
    kwargs = pool.connection_kwargs
    if isinstance(pool, SentinelConnectionPool):
        hosts = ",".join(f"{s.connection_pool.connection_kwargs.get('host')}:"
                         f"{s.connection_pool.connection_kwargs.get('port')}"
                         for s in pool.sentinel_manager.sentinels)
        return f"redis+sentinel://{hosts}/{pool.service_name}/{kwargs.get('db', 0)}"
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
