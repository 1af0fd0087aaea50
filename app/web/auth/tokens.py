"""Personal API tokens: ``mdp_`` + 32 random bytes, stored in Redis only as their sha256.

Each token is two keys written and deleted together: ``Keys.api_token`` (a STRING whose TTL is the token's expiry,
so checking a bearer token is one GET on every worker and a revocation counts everywhere at once) and a field of
the ``Keys.api_tokens`` HASH (what ``ls`` lists and ``revoke`` searches). A token's role is at most its user's:
with a users file, the lower of the two counts at every call, and a user no longer in the file makes the token
fail; without one (sign-in off, or header SSO) the token's own role counts. Wrong tokens are counted per client
address by :class:`TokenThrottle`. A token is never logged, never put in a message, never stored.
"""

from __future__ import annotations

import builtins
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis

from app.core.errors import (
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StateUnavailableError,
    TooManyTokenAttemptsError,
)
from app.core.keys import Keys, token_digest
from app.core.settings import Settings
from app.core.store import redis_errors
from app.web.auth.roles import Role
from app.web.auth.users import UsersFile, check_name

log = logging.getLogger(__name__)

TOKEN_PREFIX = "mdp_"
PREFIX_LENGTH = 8
"""How many characters after ``mdp_`` name a token in lists (never enough to use it)."""
LAST_USED_EVERY_S = 60.0
"""A token's ``last_used_at`` is written at most this often (one small script, not a write per call)."""
MAX_TOKENS_PER_USER = 100
MAX_EXPIRES_S = 10 * 365 * 86400
TOKEN_MAX_FAILURES = 20
"""Wrong tokens from one client address before its tokens are refused for :data:`TOKEN_PAUSE_S`."""
TOKEN_PAUSE_S = 300
"""How long tokens from an address are refused after its last wrong one, once it reached the limit (s)."""

_TOKEN_RE = re.compile(r"mdp_[A-Za-z0-9_-]{43}")
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RANK = {Role.VIEWER: 0, Role.ADMIN: 1}

# Writes last_used_at only while the token still exists, so a revocation racing it is never undone.
_TOUCH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class TokenInfo:
    """What is known of a token (never the token): ``prefix`` names it in lists; times are epoch seconds."""

    label: str
    user: str
    role: Role
    prefix: str
    created_at: float
    last_used_at: float | None = None
    expires_at: float | None = None

    @property
    def shown(self) -> str:
        """``mdp_abcd1234…``: how lists and messages name the token."""
        return f"{TOKEN_PREFIX}{self.prefix}…"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class TokenThrottle:
    """Counts wrong API tokens per client address in Redis (``Keys.token_failures``), on every worker at once.

    A success does not reset the count: one valid token must not let an address go on guessing.
    """

    def __init__(self, connection: redis.Redis, keys: Keys, *, max_failures: int = TOKEN_MAX_FAILURES,
                 pause_s: int = TOKEN_PAUSE_S) -> None:
        self.redis = connection
        self.keys = keys
        self.max_failures = max_failures
        self.pause_s = pause_s

    def check(self, source: str) -> None:
        """Call before checking a token from ``source``.

        Raises:
            TooManyTokenAttemptsError: ``source`` sent too many wrong tokens lately (``retry_after_s`` says how long).
            StateUnavailableError: Redis is unreachable.
        """
        key = self.keys.token_failures(source)
        with redis_errors():
            failures = int(self.redis.get(key) or 0)
            wait = int(self.redis.ttl(key)) if failures >= self.max_failures else 0
        if failures >= self.max_failures:
            wait = max(wait, 1)
            minutes = -(-wait // 60)
            raise TooManyTokenAttemptsError(
                f"Too many wrong API tokens from this address; try again in {minutes} minute"
                f"{'s' if minutes > 1 else ''}. Check the token you send (an admin lists them with "
                "`modeldepot token ls`).", retry_after_s=wait)

    def failed(self, source: str) -> None:
        """Count a wrong (unknown, expired, revoked or malformed) token from ``source``.

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        key = self.keys.token_failures(source)
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.pause_s)
        with redis_errors():
            pipe.execute()


class TokenStore:
    """Creates, checks, lists and revokes API tokens in Redis. Build it with :func:`tokens_from_settings`.

    ``users``, when given, caps each token's role at its user's current role (see the module's docstring).
    """

    def __init__(self, connection: redis.Redis, keys: Keys, *, users: UsersFile | None = None,
                 throttle: TokenThrottle | None = None) -> None:
        self.redis = connection
        self.keys = keys
        self.users = users
        self.throttle = throttle or TokenThrottle(connection, keys)
        self._touch = connection.register_script(_TOUCH_SCRIPT)

    def create(self, user: str, role: Role, *, label: str | None = None, expires_s: int | None = None,
               max_role: Role | None = None) -> tuple[str, TokenInfo]:
        """A new token for ``user``: the token (shown once, stored only as a hash) and its details.

        ``label`` (unique per user) defaults to ``token-<prefix>``; ``expires_s`` None means it never expires;
        ``max_role`` is the creator's own role when people make their own tokens (the page, the API).

        Raises:
            InvalidInputError: a bad user name, label or expiry.
            PermissionDeniedError: ``role`` is above ``max_role`` or above the user's role in the users file.
            NotFoundError: a users file is configured and ``user`` is not in it.
            ConflictError: the user already has a token with this label, or too many tokens.
            ConfigError: the users file cannot be read.
            StateUnavailableError: Redis is unreachable.
        """
        _check_user(user)
        _check_expiry(expires_s)
        self._check_role(user, role, max_role)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        prefix = token[len(TOKEN_PREFIX):][:PREFIX_LENGTH]
        label = _checked_label(label if label is not None else f"token-{prefix}")
        now = time.time()
        info = TokenInfo(label, user, role, prefix, now, None, now + expires_s if expires_s else None)
        self._add(token_digest(token), info, expires_s)
        log.info("API token %s (%s) created for %s as %s", label, info.shown, user, role.value)
        return token, info

    def verify(self, token: str) -> TokenInfo | None:
        """The token's details with the role that counts now, or None (unknown, expired, revoked, malformed, or
        its user is no longer in the users file). One GET; ``last_used_at`` is written at most once a minute.

        Raises:
            ConfigError: the users file cannot be read.
            StateUnavailableError: Redis is unreachable.
        """
        if not _TOKEN_RE.fullmatch(token):
            return None
        with redis_errors():
            raw = self.redis.get(self.keys.api_token(token))
        info = _from_json(raw)
        now = time.time()
        if info is None or info.expired(now):
            return None
        role = self._current_role(info)
        if role is None:
            return None
        if info.last_used_at is None or now - info.last_used_at >= LAST_USED_EVERY_S:
            info = replace(info, last_used_at=now)
            self._touched(token_digest(token), info)
        return replace(info, role=role)

    def list(self, user: str | None = None) -> builtins.list[TokenInfo]:
        """The live tokens (of ``user``, or everyone's), oldest first; expired ones are forgotten on the way.

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        return [info for _, info in self._entries(user)]

    def revoke(self, label_or_prefix: str, *, user: str | None = None) -> TokenInfo:
        """Revoke the one token (of ``user``, or anyone's) with this label or prefix (``abcd1234``,
        ``mdp_abcd1234…``, or the whole token); it fails at once on every worker.

        Raises:
            NotFoundError: no such token.
            ConflictError: it names several tokens (the message lists them).
            StateUnavailableError: Redis is unreachable.
        """
        wanted = label_or_prefix.strip()
        matches = self._matching(wanted, user)
        if not matches:
            whose = f" of {user}" if user is not None else ""
            raise NotFoundError(f"No API token{whose} is labelled or starts with {_shown(wanted)!r}. See the list "
                                "(`modeldepot token ls`, or the page's API tokens panel) for labels and prefixes.")
        if len(matches) > 1:
            names = ", ".join(f"{info.user}'s {info.label} ({info.shown})" for _, info in matches)
            raise ConflictError(f"{_shown(wanted)!r} names {len(matches)} tokens: {names}. "
                                "Revoke one by its prefix.")
        digest, info = matches[0]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.api_tokens, digest)
        pipe.delete(self.keys.api_token_by_digest(digest))
        with redis_errors():
            pipe.execute()
        log.info("API token %s (%s) of %s revoked", info.label, info.shown, info.user)
        return info

    # ---- internals --------------------------------------------------------------------------------------

    def _check_role(self, user: str, role: Role, max_role: Role | None) -> None:
        if max_role is not None and _RANK[role] > _RANK[max_role]:
            raise PermissionDeniedError(f"A token's role is at most its user's: {user} is a {max_role.value}, "
                                        f"so pick {max_role.value}.")
        if self.users is None:
            return
        account = self.users.accounts().get(user)
        if account is None:
            raise NotFoundError(f"{user!r} is not in the users file ({self.users.path}), so a token of theirs "
                                "would not work. Add them first (`modeldepot auth hash`), or check the name.")
        allowed = account.user.role
        if _RANK[role] > _RANK[allowed]:
            raise PermissionDeniedError(f"A token's role is at most its user's: {user} is a {allowed.value} in "
                                        f"the users file, so pick {allowed.value}.")

    def _current_role(self, info: TokenInfo) -> Role | None:
        if self.users is None:
            return info.role
        account = self.users.accounts().get(info.user)
        if account is None:
            return None
        return min(info.role, account.user.role, key=_RANK.__getitem__)

    def _add(self, digest: str, info: TokenInfo, expires_s: int | None) -> None:
        raw = _to_json(info)

        def write(pipe: redis.client.Pipeline) -> None:
            live, _ = _parse(pipe.hgetall(self.keys.api_tokens), time.time())
            mine = [other for _, other in live if other.user == info.user]
            if any(other.label == info.label for other in mine):
                raise ConflictError(f"{info.user} already has an API token labelled {info.label!r}. Pick another "
                                    "label, or revoke that token first.")
            if len(mine) >= MAX_TOKENS_PER_USER:
                raise ConflictError(f"{info.user} has {len(mine)} API tokens already; revoke some first.")
            pipe.multi()
            pipe.hset(self.keys.api_tokens, digest, raw)
            pipe.set(self.keys.api_token_by_digest(digest), raw, ex=expires_s)

        with redis_errors():
            self.redis.transaction(write, self.keys.api_tokens)

    def _touched(self, digest: str, info: TokenInfo) -> None:
        try:
            with redis_errors():
                self._touch(keys=[self.keys.api_token_by_digest(digest), self.keys.api_tokens],
                            args=[digest, _to_json(info)])
        except StateUnavailableError:
            log.warning("could not record the last use of API token %s; it still works", info.shown)

    def _entries(self, user: str | None) -> builtins.list[tuple[str, TokenInfo]]:
        """The live tokens' digests and details, oldest first; expired ones are deleted from the HASH (their
        STRING expired already)."""
        with redis_errors():
            raw = self.redis.hgetall(self.keys.api_tokens)
        live, expired = _parse(raw, time.time())
        if expired:
            with redis_errors():
                self.redis.hdel(self.keys.api_tokens, *expired)
        return sorted(((d, i) for d, i in live if user is None or i.user == user),
                      key=lambda entry: (entry[1].created_at, entry[1].label))

    def _matching(self, wanted: str, user: str | None) -> builtins.list[tuple[str, TokenInfo]]:
        entries = self._entries(user)
        if _TOKEN_RE.fullmatch(wanted):
            digest = token_digest(wanted)
            return [(d, i) for d, i in entries if d == digest]
        prefix = wanted.removeprefix(TOKEN_PREFIX).removesuffix("…")
        return [(d, i) for d, i in entries if i.label == wanted or i.prefix == prefix]


def tokens_from_settings(settings: Settings, connection: redis.Redis) -> TokenStore:
    """The token store of the configured key prefix, capped by the users file when one is configured."""
    users = UsersFile(settings.auth_file) if settings.auth_file is not None else None
    return TokenStore(connection, Keys(settings.key_prefix), users=users)


def _check_user(user: str) -> None:
    try:
        check_name(user)
    except ConfigError as e:
        raise InvalidInputError(str(e)) from e


def _checked_label(label: str) -> str:
    label = label.strip()
    if not _LABEL_RE.fullmatch(label):
        raise InvalidInputError(f"Label {_shown(label)!r} must be 1-64 letters, digits, '.', '_' or '-', "
                                "starting with a letter or digit, e.g. ci or laptop.")
    return label


def _check_expiry(expires_s: int | None) -> None:
    if expires_s is not None and not 0 < expires_s <= MAX_EXPIRES_S:
        raise InvalidInputError(f"A token's expiry must be between 1 second and {MAX_EXPIRES_S // 86400} days, "
                                "or none (never expires).")


def _shown(text: str) -> str:
    """``text`` as a message may repeat it: short, and never a whole token pasted by mistake."""
    if text.startswith(TOKEN_PREFIX) and len(text) > len(TOKEN_PREFIX) + PREFIX_LENGTH:
        return text[:len(TOKEN_PREFIX) + PREFIX_LENGTH] + "…"
    return text[:64]


def _parse(raw: Mapping[bytes | str, bytes | str], now: float) -> tuple[list[tuple[str, TokenInfo]], list[str]]:
    """The readable, unexpired entries of the ``api_tokens`` HASH, and the digests of the expired ones."""
    live: list[tuple[str, TokenInfo]] = []
    expired: list[str] = []
    for field, value in raw.items():
        digest = field.decode() if isinstance(field, bytes) else str(field)
        info = _from_json(value)
        if info is not None and info.expired(now):
            expired.append(digest)
        elif info is not None:
            live.append((digest, info))
    return live, expired


def _to_json(info: TokenInfo) -> str:
    return json.dumps({"label": info.label, "user": info.user, "role": info.role.value, "prefix": info.prefix,
                       "created_at": info.created_at, "last_used_at": info.last_used_at,
                       "expires_at": info.expires_at})


def _from_json(raw: bytes | str | None) -> TokenInfo | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return TokenInfo(str(data["label"]), str(data["user"]), Role(data["role"]), str(data["prefix"]),
                         float(data["created_at"]), _optional_time(data.get("last_used_at")),
                         _optional_time(data.get("expires_at")))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed API token record")
        return None


def _optional_time(value: Any) -> float | None:
    return None if value is None else float(value)
