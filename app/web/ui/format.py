"""Numbers and times as people read them: sizes, speeds, durations, timestamps. Pure functions."""

from __future__ import annotations

import time

from app.core.units import human_bytes


def human_speed(bps: float | None) -> str:
    return f"{human_bytes(bps)}/s" if bps else "—"


def timestamp(epoch: float | None) -> str:
    """Server-local ``YYYY-MM-DD HH:MM``, the same clock as the event log."""
    if not epoch:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def short_commit(commit: str | None) -> str:
    return (commit or "")[:7]


def percent(done: int, total: int) -> float:
    """Progress in percent, clamped to 0..100; 0 while the total is unknown."""
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * done / total))


def split_patterns(text: str | list[str] | None) -> list[str] | None:
    """Comma- or newline-separated patterns -> a list, or None when there are none."""
    if text is None:
        return None
    parts = text if isinstance(text, list) else text.replace("\n", ",").split(",")
    patterns = [p.strip() for p in parts if isinstance(p, str) and p.strip()]
    return patterns or None
