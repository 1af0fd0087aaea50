"""Sizes and durations as people read them, the same in the page, the command line, the event log and error messages."""

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


def human_duration(seconds: float | None) -> str:
    """``130`` -> ``"2m 10s"``, ``3725`` -> ``"1h 02m"``; None (unknown) -> ``"—"`` (page, CLI and log alike)."""
    if seconds is None or seconds < 0:
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


_SIZE_FACTORS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
                 "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
                 "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(text: str | int | float) -> int:
    """``"50MB"`` -> 50_000_000, ``"400MiB"`` -> 419_430_400, ``"1234"`` -> 1234 (kB/MB/GB decimal, KiB/MiB/GiB
    binary, as ``human_bytes`` and the Hub write them).

    Raises:
        ValueError: not a size, or negative; the message gives examples.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        raw = str(text).strip().lower().replace(" ", "")
        raw = raw.removesuffix("/s")
        digits = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = raw[len(digits):]
        try:
            value = float(digits)
        except ValueError:
            value = float("nan")
    if unit not in _SIZE_FACTORS or not value >= 0:
        raise ValueError(f"{str(text)[:40]!r} is not a size; use plain bytes or a unit, e.g. 50MB, 400MiB or 1GB")
    return int(value * _SIZE_FACTORS[unit])


def human_age(seconds: float | None) -> str:
    """How long ago, coarsely: ``"40 s"``, ``"12 min"``, ``"5 h"``, ``"40 days"``; None -> ``"never"``."""
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
