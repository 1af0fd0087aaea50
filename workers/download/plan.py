"""What a download job will fetch: the resolved commit and the files its patterns select."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlannedFile:
    """One file of a planned download; ``cached`` files are already on the volume."""

    path: str
    size: int
    cached: bool


@dataclass(frozen=True)
class DownloadPlan:
    """What :func:`download` will fetch: the resolved commit and the files the patterns select."""

    repo_id: str
    revision: str | None
    commit: str
    files: tuple[PlannedFile, ...]
    allow_patterns: tuple[str, ...] | None = None
    ignore_patterns: tuple[str, ...] | None = None

    @property
    def bytes_total(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def files_total(self) -> int:
        return len(self.files)

    @property
    def bytes_needed(self) -> int:
        """Bytes not in the cache yet."""
        return sum(f.size for f in self.files if not f.cached)

    @property
    def files_needed(self) -> int:
        return sum(not f.cached for f in self.files)
