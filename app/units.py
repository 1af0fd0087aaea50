"""Sizes as people read them, the same in the page, the command line, the event log and error messages."""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(count: float | None) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as the Hub shows sizes)."""
    value = float(count or 0)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
