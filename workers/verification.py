"""Checking a download against the Hub's checksums, each file as soon as it lands.

``HfApi.verify_repo_checksums`` (the API behind ``hf cache verify``) lists the repo tree once, then hashes
every file of the snapshot one after the other. Run after the download, that re-read of a 1 GiB model
takes seconds past the last byte. :class:`EarlyChecks` uses the same two library parts, the tree listing
and ``verify_maps`` (huggingface_hub's comparison of a local file with the Hub's sha256 or git blob id), but
hashes a file the moment its snapshot link appears, on a small thread pool: files that finish early are
checked while the others still arrive, and the rest are hashed on every core at once.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils._verification import verify_maps

from app.errors import IntegrityError
from workers import cache
from workers.hub_errors import hub_errors, integrity_message

if TYPE_CHECKING:
    from workers.hub import DownloadPlan

CHECK_THREADS = 2


class EarlyChecks:
    """The checksum pass of one planned download, started file by file while it downloads.

    Call :meth:`poll` now and then during the download, then :meth:`finish` once it is done; call
    :meth:`close` in every case (it abandons checks still queued).
    """

    def __init__(self, plan: DownloadPlan, *, cache_dir: Path, token: str | None = None,
                 endpoint: str | None = None, threads: int = CHECK_THREADS) -> None:
        self._plan = plan
        self._cache_dir = cache_dir
        self._endpoint = endpoint
        self._snapshot = cache.snapshot_dir(plan.repo_id, plan.commit, cache_dir)
        self._waiting = [f.path for f in plan.files]
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="checksum")
        self._remote = self._pool.submit(self._list_remote, token)
        self._checks: dict[str, Future[bool]] = {}
        self.order: list[str] = []
        """Paths in the order their check was started (tests look at it)."""

    def poll(self) -> None:
        """Start checking every planned file whose snapshot link has appeared (its blob is complete)."""
        landed = [p for p in self._waiting if os.path.lexists(self._snapshot / p)]
        for path in landed:
            self._waiting.remove(path)
            self._checks[path] = self._pool.submit(self._matches, path)
            self.order.append(path)

    def finish(self) -> None:
        """Check what is left, wait for every check, and delete the files that do not match.

        Raises:
            IntegrityError: a file does not match the Hub's checksum or is missing.
            RepoNotFoundError, GatedRepoError, HubNetworkError, ...: listing the Hub's checksums failed.
        """
        self.poll()
        with hub_errors(self._plan.repo_id, revision=self._plan.commit, endpoint=self._endpoint,
                        cache_dir=self._cache_dir):
            corrupt = sorted(path for path, check in self._checks.items() if not check.result())
        missing = sorted(self._waiting)
        if corrupt:
            cache.delete_files(self._plan.repo_id, self._plan.commit, corrupt, cache_dir=self._cache_dir)
        if corrupt or missing:
            raise IntegrityError(integrity_message(self._plan.repo_id, corrupt, missing))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _list_remote(self, token: str | None) -> dict[str, RepoFile]:
        api = HfApi(endpoint=self._endpoint, token=token)
        entries = api.list_repo_tree(self._plan.repo_id, revision=self._plan.commit, recursive=True, token=token)
        return {entry.path: entry for entry in entries if isinstance(entry, RepoFile)}

    def _matches(self, path: str) -> bool:
        remote = self._remote.result()
        if path not in remote:
            return False
        result = verify_maps(remote_by_path={path: remote[path]}, local_by_path={path: self._snapshot / path},
                             revision=self._plan.commit, verified_path=self._snapshot)
        return not result.mismatches
