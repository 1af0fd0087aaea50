"""A thin, typed layer over huggingface_hub for the download jobs: plan, check space, download, verify.

Everything goes through huggingface_hub (no hand-written HTTP) into ``cache_dir`` in the standard HF cache
layout (see :mod:`workers.cache`). Errors from huggingface_hub, httpx2 and the disk are converted where they
enter, in :func:`hub_errors`, into :class:`~app.errors.DownloadError` subclasses whose messages say what to
do next and never contain a token.

Progress is observed by polling the repo's ``blobs/`` folder (see :class:`_BlobWatcher` for why), while the
download itself runs in a helper thread so ``on_progress`` is called in the caller's thread and anything it
raises (a cancellation, a job timeout) stops the download.

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

import errno
import os
import shutil
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx2
from huggingface_hub import HfApi, constants, set_client_factory, snapshot_download
from huggingface_hub import errors as hf_errors
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils._http import default_client_factory
from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

from app.errors import (
    DiskFullError,
    DownloadError,
    GatedRepoError,
    HubNetworkError,
    IntegrityError,
    InvalidInputError,
    ModelDepotError,
    NoMatchingFilesError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from app.validation import show
from workers import cache

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_ABORT_GRACE_S = 5.0
"""How long an interrupted download may take to notice it must stop before :func:`download` re-raises."""


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


@dataclass(frozen=True)
class Progress:
    """Where a download stands; cached files count as done from the start."""

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int


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
            tqdm_class=_quiet_bar(),
            dry_run=True,
        )
    if not infos:
        raise NoMatchingFilesError(_no_files_message(repo_id, revision, allow_patterns, ignore_patterns))
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
            f"Not enough free space for {plan.repo_id}: it needs {human_size(plan.bytes_needed)} more but "
            f"the models volume ({models_dir}) has {human_size(free)} free. Remove unused models or grow "
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
) -> Path:
    """Download the planned commit into ``cache_dir``; return its snapshot folder.

    ``on_progress`` is called in the calling thread about every ``poll_interval`` seconds and once at the
    end with everything done. If it raises (e.g. a cancellation), the download stops and the exception
    propagates. Files completed before a failure stay in the cache; a new call fetches only the rest.

    Raises:
        RepoNotFoundError, GatedRepoError, RevisionNotFoundError, HubNetworkError, DiskFullError: see
            :func:`hub_errors`.
    """
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
        tqdm_class=_quiet_bar(abort),
    )
    watcher = _BlobWatcher(plan, cache_dir)
    runner = _Runner(work)
    _watch(runner, watcher, on_progress, abort, poll_interval)
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
        raise IntegrityError(_integrity_message(repo_id, corrupt, missing))


# -- error conversion ------------------------------------------------------------------------------------


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

    huggingface_hub has already retried what it retries (see the module docstring). Unknown errors propagate
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


def _disk_full_message(where: _Where) -> str:
    free = f" ({human_size(free_bytes(where.cache_dir))} free)" if where.cache_dir is not None else ""
    return (
        f"The models volume ran out of space{free} while fetching {where.repo_id}. Remove unused models or "
        "grow the volume, then retry; files already complete are kept."
    )


def _no_files_message(
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


def _integrity_message(repo_id: str, corrupt: list[str], missing: list[str]) -> str:
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


# -- progress and cancellation ---------------------------------------------------------------------------


class _DownloadAborted(Exception):
    """Raised inside the download threads once the caller has stopped waiting."""


class _QuietBar(hf_tqdm):
    """A progress bar that draws nothing and raises once ``_abort`` is set.

    snapshot_download builds its bars from ``tqdm_class`` and updates them for every chunk of every file,
    which makes ``update`` the one place where all download threads pass regularly.
    """

    _abort: ClassVar[threading.Event | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    def update(self, n: float | None = 1) -> bool | None:
        if self._abort is not None and self._abort.is_set():
            raise _DownloadAborted("download stopped by the caller")
        result: bool | None = super().update(n)
        return result


def _quiet_bar(abort: threading.Event | None = None) -> type[_QuietBar]:
    class _Bar(_QuietBar):
        _abort = abort

    return _Bar


class _Runner:
    """Runs the blocking download in a daemon thread and keeps its outcome."""

    def __init__(self, work: Callable[[], str]) -> None:
        self._work = work
        self._result: str | None = None
        self._error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-download", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def result(self) -> str:
        """The work's return value, or its exception raised again."""
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def _run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as e:  # handed over to the calling thread by result()
            self._error = e
        finally:
            self.done.set()


def _watch(
    runner: _Runner,
    watcher: _BlobWatcher,
    on_progress: Callable[[Progress], None],
    abort: threading.Event,
    poll_interval: float,
) -> None:
    """Report progress until the runner is done; if anything interrupts, stop the download and re-raise."""
    runner.start()
    try:
        on_progress(watcher.progress())
        while not runner.done.wait(poll_interval):
            on_progress(watcher.progress())
    except BaseException:
        abort.set()
        runner.join(_ABORT_GRACE_S)
        raise


class _BlobWatcher:
    """Measures a download from the files it writes.

    Bytes done = bytes cached before the start + sizes of every entry that appeared in ``blobs/`` since
    (``<etag>.<id>.incomplete`` files growing, then renamed to ``<etag>``). Files done = planned files whose
    snapshot link exists. Watching the disk rather than ``tqdm_class`` updates counts only bytes that
    survive, does not depend on which internal bars snapshot_download creates (it feeds two byte bars and a
    file bar from the same class), and works the same for HTTP and Xet transfers. Values never go back.
    """

    def __init__(self, plan: DownloadPlan, cache_dir: Path) -> None:
        folder = cache.repo_dir(plan.repo_id, cache_dir)
        self._blobs = folder / "blobs"
        self._snapshot = folder / "snapshots" / plan.commit
        self._known = {name for name, _ in _entries(self._blobs)}
        self._pending = {f.path for f in plan.files if not f.cached}
        self._base = plan.bytes_total - plan.bytes_needed
        self._last = Progress(
            self._base, plan.bytes_total, plan.files_total - len(self._pending), plan.files_total
        )

    def progress(self) -> Progress:
        new = sum(size for name, size in _entries(self._blobs) if name not in self._known)
        self._pending = {p for p in self._pending if not os.path.lexists(self._snapshot / p)}
        last = self._last
        self._last = Progress(
            bytes_done=min(last.bytes_total, max(last.bytes_done, self._base + new)),
            bytes_total=last.bytes_total,
            files_done=max(last.files_done, last.files_total - len(self._pending)),
            files_total=last.files_total,
        )
        return self._last

    def finished(self) -> Progress:
        total = self._last
        return Progress(total.bytes_total, total.bytes_total, total.files_total, total.files_total)


def _entries(folder: Path) -> list[tuple[str, int]]:
    """(name, size) of the files in ``folder``; files vanishing meanwhile are skipped."""
    found = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    found.append((entry.name, entry.stat().st_size))
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return []
    return found


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


def free_bytes(path: Path) -> int:
    """Free bytes on the volume holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
    return 0


def human_size(size: int) -> str:
    """``1234567`` -> ``'1.2 MB'`` (decimal units, as the Hub shows sizes)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _as_tuple(patterns: list[str] | None) -> tuple[str, ...] | None:
    return None if patterns is None else tuple(patterns)


def _as_list(patterns: tuple[str, ...] | None) -> list[str] | None:
    return None if patterns is None else list(patterns)
