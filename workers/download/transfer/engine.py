"""One download's files, a few at a time: from the Hub's metadata to blobs, snapshot links and refs.

:class:`Transfer` runs each file of a :class:`~workers.download.plan.DownloadPlan` in a thread of its own (at most
``max_files`` at once), while the calling thread reports progress, keeps the partial-file claims alive and
stops everything the moment its progress callback raises (a cancel, a pause, a job timeout). Per file:

1. the Hub's metadata at the planned commit (``get_hf_file_metadata``): the etag names the blob;
2. a blob already on the volume (another revision, an earlier attempt) is only linked;
3. otherwise the partial ``blobs/<etag>.incomplete`` is claimed (:mod:`workers.download.transfer.claims`) and file-
   locked, continued from its last byte with ``http_get(..., resume_size=...)`` and hashed as it is written;
4. transient failures are retried (:mod:`workers.download.transfer.retry`) until ``retry_window_s`` passes with no
   new byte; the file's :class:`~app.core.records.RetryState` is what the page shows meanwhile;
5. the hash is compared with the Hub's tree listing (the values ``verify_maps`` compares); a mismatch
   refetches the file once, a second one fails the download;
6. fsync, ``os.replace`` to ``blobs/<etag>``, the snapshot link; once every file is there, ``refs/<branch>``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import filelock
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.file_download import (
    HfFileMetadata,
    _cache_commit_hash_for_specific_revision,
    _create_symlink,
    http_get,
    xet_get,
)
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]
from huggingface_hub.utils._runtime import is_xet_available

from app.core.errors import DownloadError, HubNetworkError, IntegrityError
from app.core.records import RetryState
from app.core.settings import Settings
from app.core.validation import show
from workers.download import cache
from workers.download.hub_errors import hub_errors, integrity_message
from workers.download.plan import DownloadPlan, PlannedFile
from workers.download.transfer.bandwidth import RateLimiter
from workers.download.transfer.claims import PartialClaims
from workers.download.transfer.partial import HashAlgo, PartialFile, TransferStopped
from workers.download.transfer.retry import Backoff, retry_after, transient_cause

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_SIZE = 256 << 10
"""Bytes per read (huggingface_hub's default is 10 MB). httpx drops the part of a chunk it holds when a
connection breaks, so this is also the most a cut can cost; smaller reads also mean finer progress,
throttling and stop checks."""
_STOP_GRACE_S = 5.0
_CLAIM_POLL_S = 0.5
_INCOMPLETE = ".incomplete"
_ETAG = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


@dataclass(frozen=True)
class TransferOptions:
    """How files move; built from the settings by :meth:`from_settings`."""

    stall_s: float = 30.0
    retry_window_s: float = 900.0
    max_files: int = 8
    max_bandwidth: int | None = None
    mode: str = "auto"
    backoff: Backoff = field(default_factory=Backoff)

    @classmethod
    def from_settings(cls, settings: Settings) -> TransferOptions:
        return cls(stall_s=settings.stall_s, retry_window_s=settings.retry_window_s, max_files=settings.max_files,
                   max_bandwidth=settings.max_bandwidth, mode=settings.transfer)


@dataclass(frozen=True)
class Progress:
    """Where a download stands; cached files count as done from the start."""

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    retry: RetryState | None = None


@dataclass(frozen=True)
class Expected:
    """What the Hub says a file hashes to, and with which algorithm (as ``verify_maps`` decides)."""

    algorithm: HashAlgo
    digest: str

    @classmethod
    def of(cls, entry: RepoFile) -> Expected:
        if entry.lfs is not None:
            return cls("sha256", entry.lfs.sha256.lower())
        return cls("git-sha1", entry.blob_id.lower())


class _File:
    """One planned file's state, shared between its thread and the progress loop."""

    def __init__(self, planned: PlannedFile) -> None:
        self.planned = planned
        self.partial: PartialFile | None = None
        self.done = False
        self.retry: RetryState | None = None
        self.retry_mark = 0
        self.outage_since = 0.0
        """Unix time of the last byte before the current outage: one outage, one ``since``, one log line."""
        self.started = time.monotonic()

    @property
    def bytes_done(self) -> int:
        if self.done:
            return self.planned.size
        partial = self.partial
        return partial.size if partial is not None else 0

    def last_progress(self) -> float:
        partial = self.partial
        return max(self.started, partial.last_write if partial is not None else 0.0)


class Transfer:
    """Download the planned commit into ``cache_dir``; see the module docstring."""

    def __init__(self, plan: DownloadPlan, *, cache_dir: Path, claims: PartialClaims,
                 options: TransferOptions, token: str | None = None, endpoint: str | None = None) -> None:
        self.plan = plan
        self.cache_dir = cache_dir
        self.claims = claims
        self.options = options
        self.token = token
        self.endpoint = endpoint
        self.repo = cache.repo_dir(plan.repo_id, cache_dir)
        self.snapshot = cache.snapshot_dir(plan.repo_id, plan.commit, cache_dir)
        self._stop = threading.Event()
        self._limiter = RateLimiter(options.max_bandwidth) if options.max_bandwidth else None
        self._files = [_File(f) for f in plan.files]
        self._expected: dict[str, Expected] = {}

    # -- the calling thread

    def run(self, on_progress: Callable[[Progress], None], *, poll_interval: float = 0.25) -> Path:
        """Fetch every planned file, reporting progress about every ``poll_interval`` seconds.

        If ``on_progress`` raises, every file stops within a chunk and the exception propagates; partial
        files stay for the next attempt.

        Raises:
            HubNetworkError: a file got no byte for ``retry_window_s`` despite retries.
            IntegrityError: a file did not match the Hub's checksum twice.
            RepoNotFoundError, GatedRepoError, DiskFullError, DownloadError: see :func:`hub_errors`.
        """
        _configure_http(self.options)
        with self._errors():
            self._expected = self._list_expected()
        (self.repo / "blobs").mkdir(parents=True, exist_ok=True)
        self.snapshot.mkdir(parents=True, exist_ok=True)
        pool = ThreadPoolExecutor(self.options.max_files, thread_name_prefix="transfer")
        futures: list[Future[None]] = []
        try:
            futures = [pool.submit(self._fetch_file, f) for f in self._files]
            self._watch(futures, on_progress, poll_interval)
        except BaseException:
            # Each thread releases its own claim; one stuck in a read keeps it until the TTL runs out, so no
            # other host writes that partial before this process is gone.
            self._stop.set()
            wait(futures, timeout=_STOP_GRACE_S)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self._write_ref()
        on_progress(self.progress())
        return self.snapshot

    def progress(self) -> Progress:
        for f in self._files:
            if f.retry is not None and (f.done or f.bytes_done > f.retry_mark):
                f.retry = None  # bytes flow again
        retrying = [f.retry for f in self._files if f.retry is not None]
        return Progress(
            bytes_done=sum(f.bytes_done for f in self._files),
            bytes_total=self.plan.bytes_total,
            files_done=sum(f.done for f in self._files),
            files_total=self.plan.files_total,
            retry=min(retrying, key=lambda r: r.since) if retrying else None,
        )

    def _watch(self, futures: list[Future[None]], on_progress: Callable[[Progress], None],
               poll_interval: float) -> None:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=poll_interval, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # the first failure ends the download
            self.claims.refresh()
            on_progress(self.progress())

    def _list_expected(self) -> dict[str, Expected]:
        api = HfApi(endpoint=self.endpoint, token=self.token)
        entries = api.list_repo_tree(self.plan.repo_id, revision=self.plan.commit, recursive=True,
                                     token=self.token)
        return {e.path: Expected.of(e) for e in entries if isinstance(e, RepoFile)}

    def _write_ref(self) -> None:
        revision = self.plan.revision or constants.DEFAULT_REVISION
        if revision != self.plan.commit:
            _cache_commit_hash_for_specific_revision(str(self.repo), revision, self.plan.commit)

    def _errors(self) -> AbstractContextManager[None]:
        return hub_errors(self.plan.repo_id, revision=self.plan.revision, endpoint=self.endpoint,
                          cache_dir=self.cache_dir)

    # -- one file, in its own thread

    def _fetch_file(self, item: _File) -> None:
        pointer = cache.file_in_snapshot(self.snapshot, item.planned.path)
        if pointer.exists():
            item.done = True
            return
        item.started = time.monotonic()
        fetched = False
        with self._errors():
            meta = self._retrying(item, self._metadata, item.planned.path)
            expected = self._expected.get(item.planned.path)
            if expected is None or meta.etag is None:
                raise IntegrityError(integrity_message(self.plan.repo_id, [], [item.planned.path]))
            blob = self.repo / "blobs" / checked_etag(meta.etag, self.plan.repo_id)
            if not blob.exists():
                fetched = self._claimed_fetch(item, meta, expected, blob)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        _create_symlink(str(blob), str(pointer), new_blob=fetched)
        item.done = True

    def _metadata(self, path: str) -> HfFileMetadata:
        url = hf_hub_url(self.plan.repo_id, path, revision=self.plan.commit, endpoint=self.endpoint)
        return get_hf_file_metadata(url, token=self.token, endpoint=self.endpoint)

    def _claimed_fetch(self, item: _File, meta: HfFileMetadata, expected: Expected, blob: Path) -> bool:
        """Fetch into the partial once this job holds it (another live job's partial is waited for);
        False when someone else published the blob meanwhile."""
        etag = blob.name
        while not self.claims.acquire(self.repo.name, etag):
            if self._stop.wait(_CLAIM_POLL_S):
                raise TransferStopped("stopped while another download wrote the same file")
            if blob.exists():
                return False
        try:
            with self._file_lock(etag):
                if blob.exists():
                    return False
                self._fetch_blob(item, meta, expected, blob)
                return True
        finally:
            self.claims.release(self.repo.name, etag)

    @contextmanager
    def _file_lock(self, etag: str) -> Iterator[None]:
        """huggingface_hub's own lock path for this blob: a second guard, and safe beside ``hf download``."""
        path = self.cache_dir / ".locks" / self.repo.name / f"{etag}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path))
        while True:
            try:
                lock.acquire(timeout=_CLAIM_POLL_S)
                break
            except filelock.Timeout:
                if self._stop.is_set():
                    raise TransferStopped("stopped while waiting for a file lock") from None
        try:
            yield
        finally:
            lock.release()

    def _fetch_blob(self, item: _File, meta: HfFileMetadata, expected: Expected, blob: Path) -> None:
        size = meta.size if meta.size is not None else item.planned.size
        path = blob.with_name(blob.name + _INCOMPLETE)
        partial = PartialFile.open(path, algorithm=expected.algorithm, size=size, stop=self._stop,
                                   throttle=self._throttle)
        item.partial = partial
        try:
            for attempt in (1, 2):
                self._stream(item, partial, meta, size)
                if partial.hexdigest() == expected.digest:
                    partial.publish(blob)
                    return
                log.warning("%s of %s does not match the Hub's checksum (try %d)", item.planned.path,
                            self.plan.repo_id, attempt)
                partial.restart()
            partial.close()
            path.unlink(missing_ok=True)
            raise IntegrityError(integrity_message(self.plan.repo_id, [item.planned.path], []))
        finally:
            partial.close()

    def _stream(self, item: _File, partial: PartialFile, meta: HfFileMetadata, size: int) -> None:
        if self._use_xet(meta, size):
            self._retrying(item, self._xet_get, partial, meta, size)
            return
        headers = build_hf_headers(token=self.token)
        # _nb_retries=0: the first failure comes back here, to the backoff, the window and the live status.
        # (Once bytes flowed, http_get still resumes a cut or timed-out body by itself, 1 s later, from the
        # right offset: the partial file is the same object, so nothing is lost either way.)
        target = cast(BinaryIO, partial)  # http_get needs write/tell/seek/truncate, which PartialFile has
        self._retrying(item, lambda: http_get(meta.location, target, resume_size=partial.size, headers=headers,
                                              expected_size=size, _nb_retries=0))

    def _xet_get(self, partial: PartialFile, meta: HfFileMetadata, size: int) -> None:
        """hf_xet fetches the whole file itself (no Range resume, no cap); it is hashed from disk afterwards."""
        assert meta.xet_file_data is not None
        xet_get(incomplete_path=partial.path, xet_file_data=meta.xet_file_data,
                headers=build_hf_headers(token=self.token), expected_size=size)
        partial.truncate(os.path.getsize(partial.path))

    def _use_xet(self, meta: HfFileMetadata, size: int) -> bool:
        if meta.xet_file_data is None or self.options.mode == "http":
            return False
        if self.options.mode == "xet":
            if not is_xet_available():
                raise DownloadError("MODELDEPOT_TRANSFER=xet, but hf_xet cannot be used on this worker (not "
                                    "installed, or HF_HUB_DISABLE_XET is set): pip install hf_xet and unset "
                                    "HF_HUB_DISABLE_XET, or set MODELDEPOT_TRANSFER=auto.")
            return True
        return size > constants.MAX_HTTP_DOWNLOAD_SIZE and is_xet_available()  # the Hub's HTTP limit

    def _throttle(self, count: int) -> None:
        if self._limiter is not None:
            self._limiter.take(count, stop=self._stop)

    def _retrying(self, item: _File, call: Callable[..., T], *args: object) -> T:
        """``call()``, retried on transient failures until ``retry_window_s`` passes without a new byte."""
        attempt = 0
        mark = -1
        while True:
            try:
                return call(*args)
            except TransferStopped:
                raise
            except Exception as error:
                if self._stop.is_set():
                    raise TransferStopped("stopped") from error
                cause = transient_cause(error)
                if cause is None:
                    raise
                if item.bytes_done != mark:  # bytes arrived since the last failure: a new outage
                    attempt, mark = 0, item.bytes_done
                    item.outage_since = round(time.time() - (time.monotonic() - item.last_progress()), 3)
                attempt += 1
                self._wait_before_retry(item, error, cause, attempt)

    def _wait_before_retry(self, item: _File, error: Exception, cause: str, attempt: int) -> None:
        quiet_since = item.last_progress()
        quiet = time.monotonic() - quiet_since
        if quiet >= self.options.retry_window_s:
            raise HubNetworkError(
                f"{item.planned.path} of {self.plan.repo_id} got no data for {quiet:.0f} s despite retries "
                f"(last: {cause}). Check the workers' network and the Hub's status, then Retry: the "
                f"{item.bytes_done} bytes already fetched are kept."
            ) from error
        delay = min(self.options.backoff.delay(attempt, retry_after=retry_after(error)),
                    self.options.retry_window_s - quiet)
        item.retry_mark = item.bytes_done
        item.retry = RetryState(attempt=attempt, in_s=round(delay, 1), next_at=round(time.time() + delay, 3),
                                cause=cause, since=item.outage_since)
        log.info("%s of %s: %s; retry %d in %.1fs", item.planned.path, self.plan.repo_id, cause, attempt, delay)
        if self._stop.wait(delay):
            raise TransferStopped("stopped while waiting to retry") from error


def checked_etag(etag: str, repo_id: str) -> str:
    """``etag`` if it can name a blob file (the Hub's are hex digests); a Hub answer must not choose a path.

    Raises:
        DownloadError: it cannot.
    """
    if not _ETAG.fullmatch(etag) or ".." in etag:
        raise DownloadError(f"The Hub answered an ETag for a file of {repo_id} that is not a plain name "
                            f"({show(etag)}); check HF_ENDPOINT and any proxy in front of it, then retry.")
    return etag


def _configure_http(options: TransferOptions) -> None:
    """huggingface_hub reads these at call time: a read that waits ``stall_s`` for a byte is a stall, and
    smaller reads give finer progress, throttling and stops. One job runs per work-horse process."""
    constants.HF_HUB_DOWNLOAD_TIMEOUT = options.stall_s  # type: ignore[assignment]
    constants.DOWNLOAD_CHUNK_SIZE = CHUNK_SIZE
