"""The whole sign-in policy for a request: the trusted SSO header first, then the session cookie.

``auth_header`` names a header set by an SSO proxy in front of Model Depot (never by users: the proxy must strip
it from incoming requests). Its users get ``auth_header_role``, or ``admin`` when listed in ``auth_admins``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import redis

from app.core.errors import PermissionDeniedError
from app.core.keys import Keys
from app.core.settings import Settings
from app.web.auth.roles import Role, User, parse_role
from app.web.auth.sessions import COOKIE_NAME, SessionStore
from app.web.auth.throttle import SignInThrottle
from app.web.auth.users import UsersFile


class HasCookiesAndHeaders(Protocol):
    """What a FastAPI/Starlette request and a ``gr.Request`` both offer."""

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


class Authenticator:
    """Resolves the user of a request and checks passwords. Build it with :func:`authenticator_from_settings`."""

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
                         header_role=parse_role(settings.auth_header_role, where="MODELDEPOT_AUTH_HEADER_ROLE"),
                         header_admins=admins, throttle=throttle)
