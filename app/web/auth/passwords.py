"""Password hashes: ``salt$hash`` (hex) with scrypt, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}


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
