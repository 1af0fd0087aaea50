"""A thin, typed layer over huggingface_hub for the download jobs: plan, check space, download, verify.

Everything goes through huggingface_hub (no hand-written HTTP) into ``cache_dir`` in the standard HF cache
layout (see :mod:`workers.cache`). Errors from huggingface_hub, httpx2 and the disk are converted where they
enter, in :func:`~workers.hub_errors.hub_errors`, into :class:`~app.errors.DownloadError` subclasses whose
messages say what to do next and never contain a token.

Progress is observed by polling the repo's ``blobs/`` folder, while the download itself runs in a helper
thread so ``on_progress`` is called in the caller's thread and anything it raises (a cancellation, a job
timeout) stops the download; see :mod:`workers.transfer_watch`.

What huggingface_hub 2.4.0 retries by itself (we add no retry loop; the job decides on another attempt):

- tree listing: 5 retries on 408/429/5xx and transport errors, 1-2-4-8-8 s apart (``Retry-After`` wins);
- ``repo_info``: a single attempt, and with no timeout at all (hence :func:`configure_http_client`);
- per-file HEAD: one quick attempt, then a second round with the same 5 retries;
- file GET: 5 retries on 408/429 only; a cut or timed-out transfer (``HF_HUB_DOWNLOAD_TIMEOUT``, 10 s)
  resumes with a ``Range`` request, up to 5 times in a row without new bytes, 1 s apart. A 5xx or a TCP
  reset (``ReadError``) fails the file at once.

A failed file's partial ``.incomplete`` file is deleted; completed files stay, so the next attempt fetches
only the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, set_client_factory, snapshot_download
from huggingface_hub.utils._http import default_client_factory

from app.errors import DiskFullError, IntegrityError, NoMatchingFilesError
from app.units import human_bytes
from workers import cache
from workers.hub_errors import free_bytes as free_bytes
from workers.hub_errors import hub_errors as hub_errors
from workers.hub_errors import integrity_message, no_files_message
from workers.transfer_watch import BlobWatcher, Runner, quiet_bar, watch
from workers.transfer_watch import Progress as Progress
from workers.verification import EarlyChecks

_BlobWatcher = BlobWatcher  # its old name, still used by tests/test_hub_wrapper.py


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


# -- the four steps of a download job --------------------------------------------------------------------


def plan_download(
    repo_id: str,
    *,
    revision: str | None = None,
    allow_patterns: list[str] | None = None,
    ignore_patterns: list[str] | None = None,
    cache_dir: Path,
    token: str | None = None,
    endpoint: str | None = None,
) -> DownloadPlan:
    """Resolve the revision to a commit and list the selected files, their sizes and what is cached.

    ``token`` None means huggingface_hub's default (``HF_TOKEN``); ``endpoint`` None means ``HF_ENDPOINT``.

    Raises:
        RepoNotFoundError, GatedRepoError, RevisionNotFoundError, HubNetworkError, DiskFullError: see
            :func:`hub_errors`.
        NoMatchingFilesError: the patterns select no file (or the repo has none).
    """
    with hub_errors(repo_id, revision=revision, endpoint=endpoint, cache_dir=cache_dir):
        infos = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=allow_patterns,
            ignore_patterns=ignore_patterns,
            cache_dir=cache_dir,
            token=token,
            endpoint=endpoint,
            tqdm_class=quiet_bar(),
            dry_run=True,
        )
    if not infos:
        raise NoMatchingFilesError(no_files_message(repo_id, revision, allow_patterns, ignore_patterns))
    files = tuple(
        sorted(
            (PlannedFile(i.filename, i.file_size or 0, not i.will_download) for i in infos),
            key=lambda f: f.path,
        )
    )
    return DownloadPlan(
        repo_id=repo_id,
        revision=revision,
        commit=infos[0].commit_hash,
        files=files,
        allow_patterns=_as_tuple(allow_patterns),
        ignore_patterns=_as_tuple(ignore_patterns),
    )


def check_free_space(plan: DownloadPlan, models_dir: Path) -> None:
    """Refuse a download that cannot fit on the models volume.

    Raises:
        DiskFullError: ``plan.bytes_needed`` exceeds the free space of ``models_dir``'s volume.
    """
    free = free_bytes(models_dir)
    if plan.bytes_needed > free:
        raise DiskFullError(
            f"Not enough free space for {plan.repo_id}: it needs {human_bytes(plan.bytes_needed)} more but "
            f"the models volume ({models_dir}) has {human_bytes(free)} free. Remove unused models or grow "
            "the volume, then retry."
        )


def download(
    plan: DownloadPlan,
    *,
    cache_dir: Path,
    token: str | None = None,
    endpoint: str | None = None,
    on_progress: Callable[[Progress], None],
    poll_interval: float = 0.25,
    verify: bool = False,
) -> Path:
    """Download the planned commit into ``cache_dir``; return its snapshot folder.

    ``on_progress`` is called in the calling thread about every ``poll_interval`` seconds and once at the
    end with everything done. If it raises (e.g. a cancellation), the download stops and the exception
    propagates. Files completed before a failure stay in the cache; a new call fetches only the rest.

    With ``verify``, every planned file is checked against the Hub's checksums before this returns, each
    as soon as it lands (see :mod:`workers.verification`); files that do not match are deleted.

    Raises:
        RepoNotFoundError, GatedRepoError, RevisionNotFoundError, HubNetworkError, DiskFullError: see
            :func:`hub_errors`.
        IntegrityError: with ``verify``, a file does not match or is missing.
    """
    checks = EarlyChecks(plan, cache_dir=cache_dir, token=token, endpoint=endpoint) if verify else None

    def report(progress: Progress) -> None:
        if checks is not None:
            checks.poll()
        on_progress(progress)

    try:
        snapshot = _transfer(plan, cache_dir=cache_dir, token=token, endpoint=endpoint, on_progress=report,
                             poll_interval=poll_interval)
        if checks is not None:
            checks.finish()
    finally:
        if checks is not None:
            checks.close()
    return snapshot


def _transfer(plan: DownloadPlan, *, cache_dir: Path, token: str | None, endpoint: str | None,
              on_progress: Callable[[Progress], None], poll_interval: float) -> Path:
    abort = threading.Event()
    work = partial(
        snapshot_download,
        plan.repo_id,
        revision=plan.commit,
        cache_dir=cache_dir,
        token=token,
        endpoint=endpoint,
        allow_patterns=_as_list(plan.allow_patterns),
        ignore_patterns=_as_list(plan.ignore_patterns),
        tqdm_class=quiet_bar(abort),
    )
    watcher = BlobWatcher(plan, cache_dir)
    runner = Runner(work)
    watch(runner, watcher, on_progress, abort, poll_interval)
    with hub_errors(plan.repo_id, revision=plan.revision, endpoint=endpoint, cache_dir=cache_dir):
        snapshot = Path(runner.result())
    on_progress(watcher.finished())
    return snapshot


def verify(
    repo_id: str,
    commit: str,
    *,
    cache_dir: Path,
    token: str | None = None,
    endpoint: str | None = None,
    files: Collection[str] | None = None,
) -> None:
    """Check the snapshot's files against the Hub's checksums (as ``hf cache verify`` does).

    Files that do not match are deleted (blob and snapshot link) so a new download fetches them again.
    ``files`` (e.g. the plan's paths) must all be present too; without it, files absent locally are not
    checked, since patterns may have left them out.

    Raises:
        IntegrityError: a file does not match or is missing.
        RepoNotFoundError, GatedRepoError, HubNetworkError, ...: listing the Hub's checksums failed.
    """
    if not cache.snapshot_dir(repo_id, commit, cache_dir).is_dir():
        raise IntegrityError(
            f"{repo_id} at commit {commit[:12]} is not on the models volume; download it again."
        )
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(repo_id, revision=commit, endpoint=endpoint, cache_dir=cache_dir):
        result = api.verify_repo_checksums(repo_id, revision=commit, cache_dir=cache_dir, token=token)
    corrupt = sorted(m["path"] for m in result.mismatches)
    missing = sorted(set(files or ()) & set(result.missing_paths))
    if corrupt:
        cache.delete_files(repo_id, commit, corrupt, cache_dir=cache_dir)
    if corrupt or missing:
        raise IntegrityError(integrity_message(repo_id, corrupt, missing))


# -- HTTP client -----------------------------------------------------------------------------------------


def configure_http_client(*, timeout: float) -> None:
    """Make huggingface_hub's shared HTTP client give up on a silent connection after ``timeout`` seconds.

    huggingface_hub 2.4.0 sends its API calls (``repo_info``, the tree listing) with no timeout at all, so a
    stalled Hub would hang a job until RQ kills it. Call once at worker start; explicit timeouts the library
    does set (file transfers: ``HF_HUB_DOWNLOAD_TIMEOUT``) are kept.
    """
    set_client_factory(partial(_client_with_timeouts, timeout))


def _client_with_timeouts(timeout: float) -> httpx2.Client:
    client = default_client_factory()
    client.event_hooks["request"].append(partial(_fill_timeouts, timeout))
    return client


def _fill_timeouts(timeout: float, request: httpx2.Request) -> None:
    current = request.extensions.get("timeout") or {}
    request.extensions["timeout"] = {
        key: timeout if current.get(key) is None else current[key]
        for key in ("connect", "read", "write", "pool")
    }


# -- small helpers ---------------------------------------------------------------------------------------


def _as_tuple(patterns: list[str] | None) -> tuple[str, ...] | None:
    return None if patterns is None else tuple(patterns)


def _as_list(patterns: tuple[str, ...] | None) -> list[str] | None:
    return None if patterns is None else list(patterns)
