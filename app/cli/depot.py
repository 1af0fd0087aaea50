"""What the commands use of a depot: the part of :class:`~app.core.controller.Controller` they call, so that
:class:`~app.cli.remote.RemoteDepot` (the same calls over the HTTP API) can stand in for it.

Both satisfy :class:`Depot` structurally; mypy checks each against it where app/cli/session.py hands them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.core.controller import Outcome, Pruned
    from app.core.quota import Victim
    from app.core.records import RecordView
    from app.core.settings import Settings


@dataclass(frozen=True)
class PruneReport:
    """What a prune over HTTP answers (``POST /api/v1/prune``). Unlike :class:`~app.core.controller.Pruned` it has
    no plan: the server's ``message`` says how far over its limits the volume is, or why nothing has to go."""

    dry_run: bool
    removing: tuple[str, ...]
    """Models marked for removal (their removal jobs are queued); empty in a dry run."""
    victims: tuple[Victim, ...]
    """The least recently used models the prune takes (or, in a dry run, would take)."""
    message: str


class Waiter(Protocol):
    """Wakes a follow loop when a newer version arrived (the replica's ``wait_for``)."""

    def wait_for(self, version: int, timeout: float) -> bool: ...


class Live(Protocol):
    """Records that stay current while a command follows them (app/cli/follow.py reads these)."""

    @property
    def models(self) -> Mapping[str, RecordView]: ...

    @property
    def version(self) -> int: ...

    @property
    def replica(self) -> Waiter: ...


class Depot(Live, Protocol):
    """The shared model list as a command sees it: reads, actions (each an :class:`Outcome`), prune.

    Raises (every action): NotFoundError, ConflictError, InvalidInputError, PermissionDeniedError,
    StateUnavailableError, as :class:`~app.core.controller.Controller` documents them.
    """

    @property
    def settings(self) -> Settings: ...

    def fetch_models(self) -> list[RecordView]: ...

    def get_model(self, model_name: str) -> RecordView: ...

    def get_logs(self) -> list[str]: ...

    def download_model(self, model_name: str, revision: str | None = None,
                       allow_patterns: list[str] | None = None, ignore_patterns: list[str] | None = None,
                       requested_by: str | None = None) -> Outcome: ...

    def remove_model(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def cancel_download(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def retry_download(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def pause_download(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def resume_download(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def verify_model(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def update_model(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def pin_model(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def unpin_model(self, model_name: str, requested_by: str | None = None) -> Outcome: ...

    def check_updates(self, model_name: str | None = None, requested_by: str | None = None) -> Outcome: ...

    def prune(self, *, dry_run: bool = False, requested_by: str | None = None) -> Pruned | PruneReport: ...

    def close(self) -> None: ...
