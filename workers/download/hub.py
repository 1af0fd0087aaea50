"""A thin, typed layer over huggingface_hub for the download jobs: plan, check space, download, verify.

Everything goes through huggingface_hub (no hand-written HTTP) into ``cache_dir`` in the standard HF cache
layout (see :mod:`workers.download.cache`). Errors from huggingface_hub, httpx2 and the disk are converted where they
enter, in :func:`~workers.download.hub_errors.hub_errors`, into :class:`~app.core.errors.DownloadError` subclasses whose
messages say what to do next and never contain a token.

The files themselves move through :mod:`workers.download.transfer` (resumable, retried, hashed as they land).

What huggingface_hub 2.4.0 retries by itself for the calls made here:

- tree listing: 5 retries on 408/429/5xx and transport errors, 1-2-4-8-8 s apart (``Retry-After`` wins);
- ``repo_info``: a single attempt, and with no timeout at all (hence :func:`configure_http_client`);
- per-file HEAD of the dry run: one quick attempt, then a second round with the same 5 retries.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, set_client_factory, snapshot_download
from huggingface_hub.utils._http import default_client_factory
from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

from app.core.errors import HubNetworkError, IntegrityError, NoMatchingFilesError
from workers.download import cache
from workers.download.hub_errors import hub_errors, integrity_message, no_files_message
from workers.download.plan import DownloadPlan, PlannedFile


class _QuietBar(hf_tqdm):
    """The dry run's progress bars, drawn nowhere (a worker's log is no terminal)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]


# -- the steps of a download job -------------------------------------------------------------------------


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
            tqdm_class=_QuietBar,
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


def resolve_commit(repo_id: str, revision: str | None, *, token: str | None = None,
                   endpoint: str | None = None) -> str:
    """The commit ``revision`` (None: the default branch) names on the Hub now, asked without touching the cache
    (a dry run would point ``refs/<revision>`` at it before any of its files is there).

    Raises:
        RepoNotFoundError, GatedRepoError, RevisionNotFoundError, HubNetworkError: see :func:`hub_errors`.
    """
    with hub_errors(repo_id, revision=revision, endpoint=endpoint):
        info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision, expand=["sha"],
                                                                token=token)
    if not info.sha:
        raise HubNetworkError(f"The Hub gave no commit for {repo_id}; check HF_ENDPOINT, then retry.")
    return info.sha


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
    with hub_errors(repo_id, revision=commit, endpoint=endpoint, cache_dir=cache_dir), \
            cache.access_times_kept(repo_id, commit, cache_dir):  # our own reading is no use of the model
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
