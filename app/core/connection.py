"""Redis connections from the configured URL (redis://, rediss://, unix://, with or without password)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis

from app.core.errors import ConfigError, StateUnavailableError
from app.core.settings import Settings, get_settings


def connect(settings: Settings | None = None, *, url: str | None = None) -> redis.Redis:
    """A client for the configured Redis (not yet connected: redis-py connects lazily).

    Raises:
        ConfigError: no URL is configured and none was given.
    """
    settings = settings or get_settings()
    url = url or settings.redis_url
    if not url:
        raise ConfigError("No Redis URL: set MODELDEPOT_REDIS_URL, or run `modeldepot serve` to start one.")
    tcp = {"socket_keepalive": True} if not url.startswith("unix://") else {}
    return redis.Redis.from_url(url, health_check_interval=10, socket_connect_timeout=5, **tcp)


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
            f"Cannot reach Redis at {redact(connection_url(connection))}: {str(e).rstrip('.')}. "
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
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def redact(url: str) -> str:
    """The URL with any password replaced, safe to log or show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + ':' if parts.username else ':'}***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
