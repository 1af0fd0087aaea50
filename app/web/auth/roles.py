"""Roles and the role policy: ``viewer`` reads; ``admin`` also downloads, removes, cancels, retries, updates, pins,
checks for updates and prunes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.core.errors import ConfigError, PermissionDeniedError


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


def parse_role(value: str, *, where: str) -> Role:
    """The role named by ``value`` (any case, surrounding spaces ignored).

    Raises:
        ConfigError: no such role; the message starts with ``where``.
    """
    try:
        return Role(value.strip().lower())
    except ValueError as e:
        raise ConfigError(f"{where}: unknown role {value[:20]!r}; use 'viewer' or 'admin'.") from e


def require_admin(user: User, action: str) -> None:
    """Raises: PermissionDeniedError: ``user`` is not an admin."""
    if not user.is_admin:
        raise PermissionDeniedError(f"{user.name} is a viewer and cannot {action}. "
                                    "Ask an admin, or sign in as an admin at /login.")
