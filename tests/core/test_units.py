"""app/core/units.py: sizes as people read them."""

from __future__ import annotations

from app.core.units import human_bytes


def test_human_size() -> None:
    assert [human_bytes(n) for n in (0, 999, 1_500, 3_050_002, 12 * 10**9, 5 * 10**15)] == [
        "0 B",
        "999 B",
        "1.5 kB",
        "3.1 MB",
        "12.0 GB",
        "5.0 PB",
    ]
