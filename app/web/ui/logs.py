"""The event log panel: newest first, filtered by a word, rendered as HTML."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence

SHOWN_LINES = 300

LOGS_CSS = """
ol.md-logs { list-style: none; margin: 0; padding: 0; max-height: 22em; overflow-y: auto;
  font-family: var(--font-mono); font-size: .85em; }
ol.md-logs li { padding: .15em .3em; border-bottom: 1px solid var(--border-color-primary);
  white-space: pre-wrap; word-break: break-word; }
.md-logs-note { opacity: .7; font-size: .85em; margin: .3em 0; }
"""


def log_tag(lines: Sequence[str]) -> str:
    """A short fingerprint of the log's end: it changes whenever a line is added."""
    last = lines[-1] if lines else ""
    return hashlib.blake2s(f"{len(lines)}\n{last}".encode(), digest_size=6).hexdigest()


def render_logs(lines: Sequence[str], text: str | None = None, *, limit: int = SHOWN_LINES) -> str:
    """The newest ``limit`` lines containing ``text`` (case-insensitive), newest first, as HTML."""
    needle = (text or "").strip().lower()
    picked = [line for line in reversed(lines) if not needle or needle in line.lower()]
    if not lines:
        return '<p class="md-logs-note">Nothing has happened yet.</p>'
    if not picked:
        return '<p class="md-logs-note">No log line matches this filter.</p>'
    note = ""
    if len(picked) > limit:
        note = f'<p class="md-logs-note">Showing the newest {limit} of {len(picked)} lines.</p>'
    items = "".join(f"<li>{html.escape(line)}</li>" for line in picked[:limit])
    return f'{note}<ol class="md-logs">{items}</ol>'
