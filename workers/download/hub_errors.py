"""Error conversion for :mod:`workers.download.hub`, and the messages of the errors it raises.

Errors from huggingface_hub, httpx2 and the disk are converted where they enter, in :func:`hub_errors`, into
:class:`~app.core.errors.DownloadError` subclasses whose messages say what to do next and never contain a token.
The message builders also word the errors :mod:`workers.download.hub` raises itself (no file matches the patterns,
checksums do not match); :func:`free_bytes` and :func:`human_bytes` serve these messages and its free-space
check alike.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx2
from huggingface_hub import constants
from huggingface_hub import errors as hf_errors
from huggingface_hub.errors import HFValidationError

from app.core.errors import (
    DiskFullError,
    DownloadError,
    GatedRepoError,
    HubNetworkError,
    InvalidInputError,
    ModelDepotError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from app.core.units import human_bytes
from app.core.validation import show

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True)
class _Where:
    repo_id: str
    revision: str | None
    endpoint: str | None
    cache_dir: Path | None

    @property
    def hub(self) -> str:
        """The endpoint for messages, without any user:password part."""
        parts = urlsplit(self.endpoint or constants.ENDPOINT)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")


@contextmanager
def hub_errors(
    repo_id: str, *, revision: str | None = None, endpoint: str | None = None, cache_dir: Path | None = None
) -> Iterator[None]:
    """Convert errors from huggingface_hub, httpx2 and the disk raised in the block into ours.

    huggingface_hub has already retried what it retries (see :mod:`workers.download.hub`). Unknown errors propagate
    unchanged.

    Raises:
        DiskFullError: ENOSPC or EDQUOT anywhere in the exception chain.
        GatedRepoError: the repo is gated, or the Hub refused the token (401/403).
        RepoNotFoundError: no such repo, private without a token, or disabled.
        RevisionNotFoundError: no such branch, tag or commit.
        HubNetworkError: the Hub could not be reached, or kept failing (408/429/5xx, cut-short transfers).
        DownloadError: any other HTTP error status.
        InvalidInputError: huggingface_hub rejected the repo id or revision.
    """
    try:
        yield
    except ModelDepotError:
        raise
    except Exception as e:
        converted = _convert_error(e, _Where(repo_id, revision, endpoint, cache_dir))
        if converted is None:
            raise
        raise converted from e


def _convert_error(error: BaseException, where: _Where) -> ModelDepotError | None:
    """Our error for a library error, or None when it is not one we know."""
    if _errno_in_chain(error, _DISK_FULL_ERRNOS):
        return DiskFullError(_disk_full_message(where))
    cause = _unwrap(error)
    for kinds, build in _CONVERTERS:
        if isinstance(cause, kinds):
            return build(cause, where)
    return None


def _unwrap(error: BaseException) -> BaseException:
    """The error behind the wrappers snapshot_download raises when the Hub call failed."""
    wrappers = (hf_errors.DryRunError, hf_errors.LocalEntryNotFoundError)
    while isinstance(error, wrappers) and error.__cause__ is not None:
        error = error.__cause__
    return error


def _errno_in_chain(error: BaseException, numbers: frozenset[int]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in numbers:
            return True
        current = current.__cause__ or current.__context__
    return False


def _gated(_: BaseException, where: _Where) -> ModelDepotError:
    return GatedRepoError(
        f"{where.repo_id} is gated on {where.hub}: the workers need the token of an account that accepted "
        f"its terms. Accept them at {where.hub}/{where.repo_id}, set HF_TOKEN on the workers, then retry."
    )


def _repo_not_found(error: BaseException, where: _Where) -> ModelDepotError:
    if isinstance(error, hf_errors.DisabledRepoError):
        return RepoNotFoundError(f"{where.repo_id} has been disabled on {where.hub}; choose another model.")
    return RepoNotFoundError(
        f"{where.repo_id} was not found on {where.hub}. Check the spelling; if the repo is private, set "
        "HF_TOKEN on the workers to a token that can read it, then retry."
    )


def _revision_not_found(_: BaseException, where: _Where) -> ModelDepotError:
    revision = show(where.revision) if where.revision else "the default branch"
    return RevisionNotFoundError(
        f"Revision {revision} of {where.repo_id} does not exist on {where.hub}. Use a branch, tag or full "
        "commit id, e.g. main."
    )


def _entry_not_found(_: BaseException, where: _Where) -> ModelDepotError:
    return HubNetworkError(
        f"{where.hub} listed a file of {where.repo_id} but then answered 404 for it; the repo may have "
        "changed meanwhile. Retry later."
    )


def _http_status(error: BaseException, where: _Where) -> ModelDepotError:
    assert isinstance(error, hf_errors.HfHubHTTPError)
    status = error.response.status_code
    if status in (401, 403):
        return GatedRepoError(
            f"{where.hub} refused access to {where.repo_id} (HTTP {status}): the workers' token is missing, "
            "invalid or not allowed to read it. Set a valid HF_TOKEN on the workers, then retry."
        )
    if status in (408, 429) or status >= 500:
        return HubNetworkError(
            f"{where.hub} failed with HTTP {status} while serving {where.repo_id}. Retry later; files "
            "already complete are kept."
        )
    return DownloadError(
        f"{where.hub} answered HTTP {status} for {where.repo_id}. Check the model name and revision, "
        "then retry."
    )


def _unreachable(error: BaseException, where: _Where) -> ModelDepotError:
    if isinstance(error, hf_errors.OfflineModeIsEnabled):
        return HubNetworkError(
            "HF_HUB_OFFLINE is set on the workers, so the Hub cannot be reached. "
            "Unset it and restart the workers."
        )
    return HubNetworkError(
        f"Could not reach {where.hub} for {where.repo_id} after retries ({type(error).__name__}). Check the "
        "workers' network, proxy (HTTPS_PROXY) and HF_ENDPOINT, then retry."
    )


def _not_a_hub(_: BaseException, where: _Where) -> ModelDepotError:
    return HubNetworkError(
        f"{where.hub} answered without Hub metadata (no commit or ETag header): check HF_ENDPOINT and any "
        "proxy in front of it, then retry."
    )


def _cut_short(error: BaseException, where: _Where) -> ModelDepotError | None:
    if "Consistency check failed" not in str(error):
        return None
    return HubNetworkError(
        f"A file of {where.repo_id} arrived incomplete from {where.hub}. Retry the download; "
        "files already complete are kept."
    )


def _invalid(_: BaseException, where: _Where) -> ModelDepotError:
    return InvalidInputError(
        f"huggingface_hub rejected {show(where.repo_id)} or its revision; model names look like org/name, "
        "e.g. Qwen/Qwen2.5-0.5B-Instruct."
    )


_Converter = Callable[[BaseException, _Where], ModelDepotError | None]
_CONVERTERS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], _Converter], ...] = (
    (hf_errors.GatedRepoError, _gated),
    ((hf_errors.RepositoryNotFoundError, hf_errors.DisabledRepoError), _repo_not_found),
    (hf_errors.RevisionNotFoundError, _revision_not_found),
    (hf_errors.RemoteEntryNotFoundError, _entry_not_found),
    (hf_errors.HfHubHTTPError, _http_status),
    ((hf_errors.OfflineModeIsEnabled, httpx2.HTTPError, ConnectionError, TimeoutError), _unreachable),
    ((hf_errors.DryRunError, hf_errors.LocalEntryNotFoundError), _unreachable),
    (hf_errors.FileMetadataError, _not_a_hub),
    (HFValidationError, _invalid),
    (OSError, _cut_short),
)


# -- messages --------------------------------------------------------------------------------------------


def _disk_full_message(where: _Where) -> str:
    free = f" ({human_bytes(free_bytes(where.cache_dir))} free)" if where.cache_dir is not None else ""
    return (
        f"The models volume ran out of space{free} while fetching {where.repo_id}. Remove unused models or "
        "grow the volume, then retry; files already complete are kept."
    )


def no_files_message(
    repo_id: str, revision: str | None, allow: list[str] | None, ignore: list[str] | None
) -> str:
    at = f" at {show(revision)}" if revision else ""
    if allow is None and ignore is None:
        return f"{repo_id}{at} has no files to download."
    given = "; ".join(
        f"{name} {', '.join(show(p) for p in pats[:5])}"
        for name, pats in (("include", allow), ("exclude", ignore))
        if pats
    )
    return (
        f"No file of {repo_id}{at} matches the patterns ({given}). Fix the patterns, "
        "e.g. include *.safetensors, or leave them empty to take every file."
    )


def integrity_message(repo_id: str, corrupt: list[str], missing: list[str]) -> str:
    parts = []
    if corrupt:
        parts.append(
            f"{len(corrupt)} file(s) of {repo_id} do not match the Hub's checksums and were deleted: "
            f"{_names(corrupt)}."
        )
    if missing:
        parts.append(f"{len(missing)} file(s) of {repo_id} are missing: {_names(missing)}.")
    return " ".join([*parts, "Retry the download to fetch them again."])


def _names(paths: list[str], limit: int = 5) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(show(p) for p in paths[:limit]) + more


# -- sizes -----------------------------------------------------------------------------------------------


def free_bytes(path: Path) -> int:
    """Free bytes on the volume holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
    return 0
