"""Who is signed in, and what they may do: users file, sessions in Redis, trusted SSO header, roles.

Off by default. Two sources of users, usable together:

* ``auth_file``: lines ``name:role:salt$hash`` (scrypt, see :func:`hash_password`). A login at ``/login``
  creates a session stored in Redis under ``Keys.session(token)`` (the key holds a hash of the token, the
  value the user and role as JSON, with a TTL of ``session_ttl``), so it works on every UI worker and
  survives restarts. Create a line with ``python -m app.web.auth hash NAME ROLE``.
  After ``login_max_failures`` wrong passwords for one user name, sign-in for that name pauses until
  ``login_pause_s`` seconds have passed since the last wrong one (counted in Redis, so on every worker).
* ``auth_header``: a header set by an SSO proxy in front of Model Depot (never by users: the proxy must
  strip it from incoming requests). Its users get ``auth_header_role``, or ``admin`` when listed in
  ``auth_admins``.

Roles: ``viewer`` reads; ``admin`` also downloads, removes, cancels and retries.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import logging
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import redis

from app.core.errors import ConfigError, PermissionDeniedError, StateUnavailableError, TooManySignInsError
from app.core.keys import Keys
from app.core.settings import Settings
from app.core.store import redis_errors

log = logging.getLogger(__name__)

COOKIE_NAME = "modeldepot_session"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
_NAME_FORBIDDEN = frozenset(":\n\r\t ")
# Resolved sessions are remembered this long in each process, so the 0.5 s timer of every open page
# does not cost a Redis round trip; a logout reaches other workers within this delay.
_SESSION_CACHE_S = 5.0
_SESSION_CACHE_MAX = 10_000


class Role(StrEnum):
    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    """A signed-in person."""

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class HasCookiesAndHeaders(Protocol):
    """What a FastAPI/Starlette request and a ``gr.Request`` both offer."""

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


# ---- passwords -----------------------------------------------------------------------------------------


def hash_password(password: str, *, salt: str | None = None) -> str:
    """``salt$hash`` (hex) of ``password`` with scrypt."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return f"{salt}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches a ``salt$hash`` made by :func:`hash_password`."""
    salt, _, expected = stored.partition("$")
    try:
        actual = hash_password(password, salt=salt).partition("$")[2]
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def make_entry(name: str, role: str, password: str) -> str:
    """One users-file line for ``name`` with ``role`` and ``password``.

    Raises:
        ConfigError: the name or role cannot be used.
    """
    _check_name(name)
    return f"{name}:{_role(role, where='role')}:{hash_password(password)}"


def _check_name(name: str) -> None:
    if not name or any(ch in _NAME_FORBIDDEN for ch in name) or len(name) > 128:
        raise ConfigError(f"User name {name[:40]!r} must be 1-128 characters without ':' or spaces.")


def _role(value: str, *, where: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError as e:
        raise ConfigError(f"{where}: unknown role {value[:20]!r}; use 'viewer' or 'admin'.") from e


# ---- users file ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    user: User
    password_hash: str


def parse_users(text: str, *, source: str = "users file") -> dict[str, _Account]:
    """Accounts from ``name:role:salt$hash`` lines (blank lines and ``#`` comments ignored).

    Raises:
        ConfigError: a line is malformed; the message names the line.
    """
    accounts: dict[str, _Account] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source} line {number}"
        name, role, password_hash = [*line.split(":", 2), "", ""][:3]
        if "$" not in password_hash:
            raise ConfigError(f"{where}: expected name:role:salt$hash; make lines with "
                              "`python -m app.web.auth hash NAME ROLE`.")
        _check_name(name)
        accounts[name] = _Account(User(name, _role(role, where=where)), password_hash)
    return accounts


class UsersFile:
    """The users file, read again whenever it changes on disk (no restart needed to add a user)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()

    def accounts(self) -> dict[str, _Account]:
        """Raises: ConfigError: the file is missing or malformed."""
        try:
            stat = self.path.stat()
        except OSError as e:
            raise ConfigError(f"Cannot read the users file {self.path}: {e.strerror}. "
                              "Fix MODELDEPOT_AUTH_FILE.") from e
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._accounts = parse_users(self.path.read_text(encoding="utf-8"), source=str(self.path))
                self._stamp = stamp
            return self._accounts

    def check(self, name: str, password: str) -> User | None:
        """The user if the password is right, else None (same work either way, against timing probes)."""
        account = self.accounts().get(name)
        stored = account.password_hash if account else hash_password("", salt="00" * 16)
        ok = verify_password(password, stored)
        return account.user if account is not None and ok else None


# ---- sessions ------------------------------------------------------------------------------------------


class SessionStore:
    """Login sessions in Redis, shared by every UI worker; a short in-process cache spares Redis per tick."""

    def __init__(self, connection: redis.Redis, keys: Keys, *, ttl: int) -> None:
        self.redis = connection
        self.keys = keys
        self.ttl = ttl
        self._cache: dict[str, tuple[float, User | None]] = {}
        self._lock = threading.Lock()

    def create(self, user: User) -> str:
        """A new session token for ``user``.

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        token = secrets.token_urlsafe(32)
        value = json.dumps({"name": user.name, "role": user.role.value, "created": time.time()})
        with redis_errors():
            self.redis.set(self.keys.session(token), value, ex=self.ttl)
        return token

    def get(self, token: str) -> User | None:
        """The user of a live session, or None.

        Raises:
            StateUnavailableError: Redis is unreachable and the session is not cached.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
        if hit is not None and now - hit[0] < _SESSION_CACHE_S:
            return hit[1]
        try:
            with redis_errors():
                raw = self.redis.get(self.keys.session(token))
        except StateUnavailableError:
            if hit is None:
                raise
            return hit[1]  # Redis is away: keep signed-in pages working on what we last knew
        user = _user_from_json(raw)
        with self._lock:
            if len(self._cache) >= _SESSION_CACHE_MAX:
                self._cache.clear()
            self._cache[token] = (now, user)
        return user

    def peek(self, token: str) -> tuple[bool, User | None]:
        """``(True, user)`` when the session is known from the last few seconds, ``(False, None)`` if Redis
        must be asked (no I/O here, so async code can call it)."""
        hit = self._cache.get(token)
        if hit is not None and time.monotonic() - hit[0] < _SESSION_CACHE_S:
            return True, hit[1]
        return False, None

    def delete(self, token: str) -> None:
        """End a session (other workers forget it within a few seconds)."""
        with self._lock:
            self._cache.pop(token, None)
        with redis_errors():
            self.redis.delete(self.keys.session(token))


class SignInThrottle:
    """Counts wrong passwords per user name in Redis, so guessing is paused on every UI worker at once.

    The pause is per name, not per client address: a whole office behind one NAT shares an address.
    """

    def __init__(self, connection: redis.Redis, keys: Keys, *, max_failures: int, pause_s: int) -> None:
        self.redis = connection
        self.keys = keys
        self.max_failures = max_failures
        self.pause_s = pause_s

    def check(self, name: str) -> None:
        """Raises: TooManySignInsError: the name had too many wrong passwords lately."""
        key = self.keys.login_failures(name)
        with redis_errors():
            failures = int(self.redis.get(key) or 0)
            wait = self.redis.ttl(key) if failures >= self.max_failures else 0
        if failures >= self.max_failures:
            minutes = max(1, -(-max(wait, 1) // 60))
            raise TooManySignInsError(f"Too many wrong passwords for {name[:64]!r}. Try again in {minutes} minute"
                                      f"{'s' if minutes > 1 else ''}, or ask an admin to check the users file.")

    def failed(self, name: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(self.keys.login_failures(name))
        pipe.expire(self.keys.login_failures(name), self.pause_s)
        with redis_errors():
            pipe.execute()

    def succeeded(self, name: str) -> None:
        with redis_errors():
            self.redis.delete(self.keys.login_failures(name))


def _user_from_json(raw: bytes | str | None) -> User | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return User(str(data["name"]), Role(data["role"]))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed session record")
        return None


# ---- the whole policy ----------------------------------------------------------------------------------


class Authenticator:
    """Resolves the user of a request and checks roles. Build it with :func:`authenticator_from_settings`."""

    def __init__(self, *, users: UsersFile | None, sessions: SessionStore | None, header: str | None = None,
                 header_role: Role = Role.VIEWER, header_admins: frozenset[str] = frozenset(),
                 throttle: SignInThrottle | None = None) -> None:
        self.users = users
        self.sessions = sessions
        self.throttle = throttle
        self.header = header.lower() if header else None
        self.header_role = header_role
        self.header_admins = header_admins

    @property
    def has_login_form(self) -> bool:
        return self.users is not None and self.sessions is not None

    def user_for(self, request: HasCookiesAndHeaders) -> User | None:
        """The signed-in user of a request (trusted header first, then the session cookie), or None."""
        if self.header:
            name = request.headers.get(self.header, "").strip()
            if name:
                role = Role.ADMIN if name in self.header_admins else self.header_role
                return User(name, role)
        token = request.cookies.get(COOKIE_NAME)
        if token and self.sessions is not None:
            return self.sessions.get(token)
        return None

    def peek(self, request: HasCookiesAndHeaders) -> tuple[bool, User | None]:
        """Like :meth:`user_for` without I/O: ``(False, None)`` when only Redis can tell."""
        if self.header and request.headers.get(self.header, "").strip():
            return True, self.user_for(request)
        token = request.cookies.get(COOKIE_NAME)
        if not token or self.sessions is None:
            return True, None
        return self.sessions.peek(token)

    def login(self, name: str, password: str) -> tuple[User, str]:
        """Check a password and open a session; returns the user and the cookie value.

        Raises:
            PermissionDeniedError: wrong name or password, or no users file configured.
            TooManySignInsError: too many wrong passwords for this name lately; the password is not checked.
            StateUnavailableError: Redis is unreachable.
        """
        if self.users is None or self.sessions is None:
            raise PermissionDeniedError("Password sign-in is not enabled here; sign in through your SSO.")
        name = name.strip()
        if self.throttle is not None:
            self.throttle.check(name)
        user = self.users.check(name, password)
        if user is None:
            if self.throttle is not None:
                self.throttle.failed(name)
            raise PermissionDeniedError("Wrong user name or password. Try again, or ask an admin to add you.")
        if self.throttle is not None:
            self.throttle.succeeded(name)
        return user, self.sessions.create(user)

    def logout(self, request: HasCookiesAndHeaders) -> None:
        token = request.cookies.get(COOKIE_NAME)
        if token and self.sessions is not None:
            self.sessions.delete(token)


def require_admin(user: User, action: str) -> None:
    """Raises: PermissionDeniedError: ``user`` is not an admin."""
    if not user.is_admin:
        raise PermissionDeniedError(f"{user.name} is a viewer and cannot {action}. "
                                    "Ask an admin, or sign in as an admin at /login.")


def authenticator_from_settings(settings: Settings, connection: redis.Redis) -> Authenticator | None:
    """The configured authenticator, or None when auth is off (neither a users file nor a header is set).

    Raises:
        ConfigError: the users file cannot be read, or a role is unknown.
    """
    if settings.auth_file is None and not settings.auth_header:
        return None
    users = UsersFile(settings.auth_file) if settings.auth_file is not None else None
    if users is not None:
        users.accounts()  # fail at start, not at the first login
    keys = Keys(settings.key_prefix)
    sessions = SessionStore(connection, keys, ttl=settings.session_ttl)
    throttle = SignInThrottle(connection, keys, max_failures=settings.login_max_failures,
                              pause_s=settings.login_pause_s)
    admins = frozenset(n.strip() for n in settings.auth_admins.split(",") if n.strip())
    return Authenticator(users=users, sessions=sessions, header=settings.auth_header or None,
                         header_role=_role(settings.auth_header_role, where="MODELDEPOT_AUTH_HEADER_ROLE"),
                         header_admins=admins, throttle=throttle)


# ---- command line --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.web.auth hash NAME ROLE``: print a users-file line (password asked, or read from stdin)."""
    parser = argparse.ArgumentParser(prog="python -m app.web.auth", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("hash", help="print a users-file line")
    make.add_argument("name")
    make.add_argument("role", choices=[r.value for r in Role])
    make.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    args = parser.parse_args(argv)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if password != getpass.getpass("Again: "):
            print("The passwords differ; nothing written.", file=sys.stderr)
            return 1
    if not password:
        print("Empty password refused.", file=sys.stderr)
        return 1
    try:
        print(make_entry(args.name, args.role, password))
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
