"""The forms of ``MODELDEPOT_REDIS_URL``: one server, or a service that Redis Sentinel watches.

``redis://``, ``rediss://`` and ``unix://`` are redis-py's own. The Sentinel form has no standard in redis-py,
so it is parsed here, once, into what :class:`redis.sentinel.Sentinel` takes::

    redis+sentinel://[user:password@]host1:26379,host2:26379/<service>/<db>     (rediss+sentinel:// for TLS)

The user and password are the data nodes'; sentinels with a password of their own get it from
``MODELDEPOT_REDIS_SENTINEL_PASSWORD``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

PLAIN_SCHEMES = ("redis://", "rediss://", "unix://")
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
SCHEMES = PLAIN_SCHEMES + SENTINEL_SCHEMES
SENTINEL_PORT = 26379
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")
_FORM = "redis+sentinel://[user:password@]host1:26379,host2:26379/<service>/<db>"


@dataclass(frozen=True)
class SentinelTarget:
    """Where the sentinels are, which service they watch, and how to log in to its data nodes."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False

    def describe(self) -> str:
        """``sentinel service 'depot' at h1:26379,h2:26379``: for messages (no password)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"Sentinel service {self.service!r} at {hosts}"


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEMES)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Raises: ValueError, saying which part is wrong and what the form is."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("redis+sentinel", "rediss+sentinel"):
        raise ValueError(f"a Sentinel URL starts with redis+sentinel:// or rediss+sentinel:// ({_FORM})")
    if "?" in rest or "#" in rest:
        raise ValueError(f"a Sentinel URL takes no query or fragment ({_FORM})")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    username, password = _credentials(userinfo)
    service, db = _service(path)
    return SentinelTarget(sentinels=tuple(_address(host) for host in hosts.split(",")), service=service, db=db,
                          username=username, password=password, ssl=scheme == "rediss+sentinel")


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) if colon else None


def _address(host: str) -> tuple[str, int]:
    if not host:
        raise ValueError(f"a Sentinel URL lists sentinels as host:port, separated by commas ({_FORM})")
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port or SENTINEL_PORT
    except ValueError:
        raise ValueError(f"{host!r} is not a host:port ({_FORM})") from None
    if not parts.hostname:
        raise ValueError(f"{host!r} is not a host:port ({_FORM})")
    return parts.hostname, port


def _service(path: str) -> tuple[str, int]:
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError(f"a Sentinel URL names the service the sentinels watch after the hosts ({_FORM})")
    if db and not db.isdigit():
        raise ValueError(f"the database after the service must be a number, not {db!r} ({_FORM})")
    return unquote(service), int(db or 0)


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to log or show (works for every form above)."""
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{hosts}{slash}{path}"
