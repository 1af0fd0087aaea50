"""The users file: ``name:role:salt$hash`` lines (``#`` comments and blank lines ignored), reread on change."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ConfigError
from app.web.auth.passwords import hash_password, verify_password
from app.web.auth.roles import User, parse_role

_NAME_FORBIDDEN = frozenset(":\n\r\t ")
_NAME_MAX = 128


@dataclass(frozen=True)
class Account:
    """A line of the users file: who, and the hash their password must match."""

    user: User
    password_hash: str


def check_name(name: str) -> None:
    """Raises: ConfigError: ``name`` cannot be a user name (empty, too long, a ``:`` or a space)."""
    if not name or any(ch in _NAME_FORBIDDEN for ch in name) or len(name) > _NAME_MAX:
        raise ConfigError(f"User name {name[:40]!r} must be 1-128 characters without ':' or spaces.")


def make_entry(name: str, role: str, password: str) -> str:
    """One users-file line for ``name`` with ``role`` and ``password``.

    Raises:
        ConfigError: the name or role cannot be used.
    """
    check_name(name)
    return f"{name}:{parse_role(role, where='role')}:{hash_password(password)}"


def parse_users(text: str, *, source: str = "users file") -> dict[str, Account]:
    """Accounts from ``name:role:salt$hash`` lines (blank lines and ``#`` comments ignored).

    Raises:
        ConfigError: a line is malformed; the message names the line.
    """
    accounts: dict[str, Account] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source} line {number}"
        name, role, password_hash = [*line.split(":", 2), "", ""][:3]
        if "$" not in password_hash:
            raise ConfigError(f"{where}: expected name:role:salt$hash; make lines with "
                              "`modeldepot auth hash NAME ROLE`.")
        check_name(name)
        accounts[name] = Account(User(name, parse_role(role, where=where)), password_hash)
    return accounts


class UsersFile:
    """The users file, read again whenever it changes on disk (no restart needed to add a user)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()

    def accounts(self) -> dict[str, Account]:
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
