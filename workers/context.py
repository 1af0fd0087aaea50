"""What every job and hook needs: settings, the store on the job's connection, the models dir."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import redis

from app.core import snapshot
from app.core.errors import ModelDepotError
from app.core.jobqueue import JobQueue
from app.core.keys import Keys
from app.core.records import ModelRecord, Status
from app.core.settings import Settings, get_settings
from app.core.store import Change, Mutation, Store, Tally
from workers.download import cache

log = logging.getLogger(__name__)

_RESUMABLE = frozenset({Status.QUEUED, Status.DOWNLOADING, Status.PAUSED, Status.FAILED})


@dataclass
class WorkerContext:
    settings: Settings
    keys: Keys
    store: Store
    jobs: JobQueue
    models_dir: Path
    state_file: Path

    @classmethod
    def for_connection(cls, connection: redis.Redis) -> WorkerContext:
        settings = get_settings()
        store = Store.for_settings(connection, settings, sender=f"worker:{socket.gethostname()}:{os.getpid()}")
        return cls(settings, Keys(settings.key_prefix), store, JobQueue(connection, settings),
                   settings.resolved_models_dir, settings.resolved_state_file)

    def update(self, name: str, mutate: Mutation, *, kind: str = "model",
               tally: Tally | None = None) -> Change | None:
        """``Store.update``; its client waits out a Redis restart or failover (``MODELDEPOT_REDIS_RETRY_S``), so an
        ending reaches the state rather than being dropped."""
        return self.store.update(name, mutate, kind=kind, tally=tally)

    def persist(self) -> None:
        """Snapshot to controller_state.json and Redis; a failure is logged, never fatal to the job."""
        try:
            snapshot.persist(self.store, self.state_file)
        except ModelDepotError:
            log.exception("could not persist the snapshot")

    def partial_owners(self, *, keep_for: str = "") -> set[str]:
        """Repo ids whose partial files a record other than ``keep_for`` may still resume."""
        return {str(m.get("repo_id")) for n, m in self.store.read_state().models.items()
                if n != keep_for and m.get("status") in _RESUMABLE}

    def discard_stale_partials(self, repo_id: str, *, keep_for: str) -> int:
        """After ``keep_for`` finished: partial files left in its repo are of files whose content changed on the
        Hub meanwhile (their etag is not in the new commit); delete them unless another record may resume them."""
        if repo_id in self.partial_owners(keep_for=keep_for):
            return 0
        try:
            return cache.delete_partials(repo_id, cache_dir=self.models_dir)
        except (ModelDepotError, OSError):
            log.exception("could not delete the stale partial files of %s", repo_id)
            return 0

    def discard_partial(self, repo_id: str, commit: str | None, *, keep_for: str) -> int:
        """Delete the files of ``repo_id@commit`` unless another record still needs them."""
        others = [m for n, m in self.store.read_state().models.items()
                  if n != keep_for and m.get("repo_id") == repo_id
                  and m.get("status") in (Status.READY, Status.DOWNLOADING, Status.QUEUED, Status.PAUSED)]
        try:
            if not others:
                return cache.delete_revision(repo_id, None, cache_dir=self.models_dir)
            if commit is None or any(m.get("commit") in (commit, None) for m in others):
                return 0  # shared with a model still wanted; the sweep takes stale *.incomplete later
            return cache.delete_revision(repo_id, commit, cache_dir=self.models_dir)
        except (ModelDepotError, OSError):
            log.exception("could not delete the partial files of %s", repo_id)
            return 0

    def drop_revision(self, repo_id: str, commit: str, *, keep_for: str) -> int:
        """Delete one revision's files that no other revision links (an update's old one), unless a record other
        than ``keep_for`` still names that commit; return the bytes freed."""
        if any(n != keep_for and m.get("repo_id") == repo_id and m.get("commit") == commit
               for n, m in self.store.read_state().models.items()):
            return 0
        try:
            return cache.delete_revision(repo_id, commit, cache_dir=self.models_dir)
        except (ModelDepotError, OSError):
            log.exception("could not delete revision %s of %s", commit[:12], repo_id)
            return 0

    def abandon_update(self, record: ModelRecord, new_commit: str | None, *, discard: bool) -> None:
        """An update that failed or was cancelled: ``record`` is ready at its old commit again, so its branch
        names that commit; a cancelled one (``discard``) also loses what it fetched of ``new_commit``."""
        assert record.commit is not None
        try:
            cache.point_ref(record.repo_id, record.branch, record.commit, cache_dir=self.models_dir)
        except (ModelDepotError, OSError):
            log.exception("could not point %s of %s back at %s", record.branch, record.repo_id, record.commit[:12])
        if discard and new_commit and new_commit != record.commit:
            self.drop_revision(record.repo_id, new_commit, keep_for=record.name)
            self.discard_stale_partials(record.repo_id, keep_for=record.name)

