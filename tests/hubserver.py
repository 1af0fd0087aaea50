"""A local stand-in for the Hugging Face Hub, for tests and benchmarks.

:class:`HubServer` is a real HTTP server (127.0.0.1, ephemeral port by default) that speaks the part of the
Hub API huggingface_hub 2.4.0 uses to download: ``/api/models/{repo}[/revision/{rev}]`` (repo_info /
model_info), ``/api/models/{repo}/tree/{rev}[/{path}]`` (list_repo_tree, verify_repo_checksums),
``/api/models/{repo}/refs`` (list_repo_refs) and ``HEAD|GET /{repo}/resolve/{rev}/{path}`` (hf_hub_download,
snapshot_download, dry runs, ``Range`` resumes). Errors carry the Hub's ``X-Error-Code`` header and a JSON
``{"error": ...}`` body, so huggingface_hub raises its own typed errors.

Files are either given as bytes or as a size: a file of that many deterministic pseudo-random bytes, made
while streaming (a 1 GiB file is never held in memory; its sha256 is computed once and cached). Files of
``lfs_threshold`` bytes or more are LFS files, as on the Hub: the tree lists ``lfs: {oid: sha256, size,
pointerSize}`` and ``oid`` = git blob sha1 of the LFS pointer; smaller files have ``oid`` = git blob sha1 of
their content.

Faults (:meth:`HubServer.set_fault`) make it misbehave on purpose: ``500``, ``502``, ``504``, ``429`` and
``503`` (both with ``Retry-After``), ``404``, ``reset`` (half the body or up to ``cut_at``, then a clean close),
``rst`` (the same, then a TCP reset), ``stall`` (the same, then silence) and ``corrupt`` (one byte flipped, same
length). Faults for one file can be queued (``append=True``) to script a sequence of attempts.
:meth:`HubServer.set_api_fault` makes the API calls of one repo fail the same way (``refs``, ``info``,
``tree``: the status faults, ``404`` as a missing repo, and ``stall``), and :meth:`HubServer.api_calls` counts
the calls made per route.

Run it as a process for other test processes and benchmarks::

    python -m tests.hubserver --port 0 --repo org/name:config.json=300,model.safetensors=1G

The first stdout line is the URL; it serves until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import logging
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

if TYPE_CHECKING:
    import pytest

log = logging.getLogger(__name__)

FAULT_KINDS = frozenset({"500", "502", "503", "504", "429", "404", "reset", "rst", "stall", "corrupt"})
# Faults answered instead of the file (HEAD and GET by default) / faults that damage a GET body.
STATUS_FAULTS = frozenset({"500", "502", "503", "504", "429", "404"})
BODY_FAULTS = FAULT_KINDS - STATUS_FAULTS
_CUT_FAULTS = frozenset({"reset", "rst", "stall"})
# API calls that can be made to fail (set_api_fault), and the routes api_calls counts.
API_ROUTES = frozenset({"refs", "info", "tree"})
API_FAULT_KINDS = STATUS_FAULTS | {"stall"}
COUNTED_ROUTES = API_ROUTES | {"resolve"}

DEFAULT_LFS_THRESHOLD = 10_000
_BLOCK = 1 << 20  # generated files are made of 1 MiB blocks: rotations of a per-file random pool
_WRITE_CHUNK = 64 * 1024
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_API_SUBPATHS = frozenset({"revision", "tree", "refs", "resolve", "paths-info", "commits", "preupload"})
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_EMPTY_AGENT_REGISTRY: dict[str, Any] = {"standardEnvVars": [], "harnesses": {}}


# --------------------------------------------------------------------------------------------------- content


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, as ``git hash-object`` computes it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that stands in the git tree for an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@lru_cache(maxsize=16)
def _pool(seed: str) -> bytes:
    return random.Random(seed).randbytes(_BLOCK)


_DIGESTS: dict[tuple[str, int], str] = {}  # (seed, size) -> sha256 of a generated file, shared by servers
_DIGEST_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Blob:
    """The bytes of one file: given, or ``size`` deterministic pseudo-random bytes made from ``seed``."""

    size: int
    data: bytes | None = None
    seed: str = ""

    @classmethod
    def of(cls, spec: bytes | int, seed: str) -> _Blob:
        if isinstance(spec, bytes | bytearray | memoryview):
            data = bytes(spec)
            return cls(size=len(data), data=data)
        if isinstance(spec, bool) or not isinstance(spec, int) or spec < 0:
            raise TypeError(f"file content must be bytes or a size >= 0, not {spec!r}")
        return cls(size=spec, seed=f"{seed}:{spec}")

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes ``[start, end)``, at most 1 MiB at a time."""
        pos = start
        while pos < end:
            block, offset = divmod(pos, _BLOCK)
            take = min(_BLOCK - offset, end - pos)
            if self.data is not None:
                yield self.data[pos : pos + take]
            else:
                yield self._block(block)[offset : offset + take]
            pos += take

    def _block(self, index: int) -> bytes:
        pool = _pool(self.seed)
        turn = int.from_bytes(hashlib.sha256(f"{self.seed}#{index}".encode()).digest()[:4], "big") % _BLOCK
        return pool[turn:] + pool[:turn]

    def read_all(self) -> bytes:
        return self.data if self.data is not None else b"".join(self.chunks(0, self.size))

    def sha256(self) -> str:
        if self.data is not None:
            return hashlib.sha256(self.data).hexdigest()
        key = (self.seed, self.size)
        with _DIGEST_LOCK:
            if key not in _DIGESTS:
                digest = hashlib.sha256()
                for chunk in self.chunks(0, self.size):
                    digest.update(chunk)
                _DIGESTS[key] = digest.hexdigest()
            return _DIGESTS[key]

    def describe(self) -> str:
        """Identifies the content without hashing a big generated file (used to make commit shas)."""
        return hashlib.sha1(self.data).hexdigest() if self.data is not None else f"generated:{self.seed}"


@dataclass(frozen=True)
class _File:
    path: str
    blob: _Blob
    lfs: bool

    @cached_property
    def sha256(self) -> str:
        return self.blob.sha256()

    @cached_property
    def blob_id(self) -> str:
        """The git oid the Hub lists: of the LFS pointer for LFS files, of the content otherwise."""
        return git_blob_sha1(self.pointer if self.lfs else self.blob.read_all())

    @property
    def pointer(self) -> bytes:
        return lfs_pointer(self.sha256, self.blob.size)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id

    def tree_entry(self, last_commit: dict[str, str] | None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.blob_id,
            "size": self.blob.size,
            "path": self.path,
        }
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.blob.size, "pointerSize": len(self.pointer)}
        if last_commit is not None:
            entry["lastCommit"] = last_commit
        return entry

    def sibling(self, with_blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": self.path}
        if with_blobs:
            entry.update(blobId=self.blob_id, size=self.blob.size)
            if self.lfs:
                entry["lfs"] = {
                    "sha256": self.sha256,
                    "size": self.blob.size,
                    "pointerSize": len(self.pointer),
                }
        return entry


@dataclass(frozen=True)
class _Commit:
    sha: str
    files: Mapping[str, _File]  # never changed once the commit exists: read without the lock
    date: str
    title: str

    def last_commit(self) -> dict[str, str]:
        return {"id": self.sha, "title": self.title, "date": self.date}

    def directories(self) -> set[str]:
        return {path.rsplit("/", i)[0] for path in self.files for i in range(1, path.count("/") + 1)}


@dataclass
class _Repo:
    repo_id: str
    default_branch: str
    gated: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> _Commit | None:
        sha = self.branches.get(revision) or self.tags.get(revision) or revision
        return self.commits.get(sha)


@dataclass
class _Fault:
    kind: str
    remaining: int  # -1 = forever
    retry_after: int
    methods: frozenset[str]
    cut_at: int | None = None  # absolute file offset: where cut faults cut, which byte ``corrupt`` flips


# ---------------------------------------------------------------------------------------------------- errors


class _HubError(Exception):
    """An error answered the way the Hub answers it: status, ``X-Error-Code`` and ``{"error": message}``."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def _repo_not_found(token: str | None) -> _HubError:
    # Like the Hub: 401 when anonymous (a private repo looks the same), 404 when authenticated.
    return _HubError(404 if token else 401, "Repository not found", "RepoNotFound")


def _revision_not_found(revision: str) -> _HubError:
    return _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _entry_not_found(commit: _Commit) -> _HubError:
    return _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})


def _gated(repo_id: str, token: str | None) -> _HubError:
    if token is None:
        message = (
            f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to "
            "access it. Please log in."
        )
        return _HubError(401, message, "GatedRepo")
    message = f"Access to model {repo_id} is restricted and you are not in the authorized list."
    return _HubError(403, message, "GatedRepo")


_GATEWAY_ERRORS = {
    "502": "Bad Gateway",
    "503": "Service Unavailable - the server is temporarily unable to handle the request.",
    "504": "Gateway Timeout",
}


def _fault_error(fault: _Fault, commit: _Commit) -> _HubError:
    """The answer of a status fault on a file of ``commit``: ``404`` is EntryNotFound."""
    if fault.kind == "404":
        return _entry_not_found(commit)
    return _status_error(fault, {"X-Repo-Commit": commit.sha})


def _api_fault_error(fault: _Fault, token: str | None) -> _HubError:
    """The answer of a status fault on an API call: ``404`` is a repo that does not exist."""
    if fault.kind == "404":
        return _repo_not_found(token)
    return _status_error(fault, {})


def _status_error(fault: _Fault, retry_headers: Mapping[str, str]) -> _HubError:
    """500, 502, 504; or 429 and 503 with ``Retry-After`` and ``retry_headers``."""
    if fault.kind in ("429", "503"):
        headers = {"Retry-After": str(fault.retry_after), **retry_headers}
        if fault.kind == "503":
            return _HubError(503, _GATEWAY_ERRORS["503"], None, headers)
        return _HubError(429, "You have been rate-limited; retry later.", None, headers)
    if fault.kind in _GATEWAY_ERRORS:
        return _HubError(int(fault.kind), _GATEWAY_ERRORS[fault.kind])
    return _HubError(500, "Internal Error - We're working hard to fix this as soon as possible!")


# ---------------------------------------------------------------------------------------------------- server


class HubServer:
    """A fake Hugging Face Hub over real HTTP; see the module docstring.

    Attributes that can be changed at any time:
        valid_tokens: bearer tokens that may download gated repos.
        throttle_bps: bytes per second per GET body (None = as fast as possible). Read before every piece of
            a body, so a change applies to responses already streaming, from then on.
        xet: announce every file as Xet-backed (``X-Xet-Hash``, ``X-Xet-Refresh-Route``), as most repos on the
            real Hub are; the files are still served over plain HTTP (there is no Xet storage here, and its
            token route answers 404).
        ignore_range: answer a GET that carries a ``Range`` header ``200`` with the whole file, as a CDN that
            ignores ``Range`` does (faults still apply; the request is still in ``range_requests``).
        lfs_threshold: files at least this big (bytes) are LFS files; read by :meth:`add_repo`.
        tree_page_size: entries per page of a tree listing (the Hub uses 1000).
        stall_seconds: how long a ``stall`` fault holds a connection open at most.

    Records (also readable at any time; clear them in place to reset):
        get_counts: ``(repo_id, path)`` -> number of GETs of that file (counted when they start).
        max_concurrent_gets: ``(repo_id, path)`` -> peak number of simultaneous GETs of that file.
        requests: ``(method, url path)`` of every request (API calls included), query string left out;
            :meth:`api_calls` counts them by route.
        range_requests: ``(repo_id, path, first byte)`` of every GET that carried a ``Range`` header.
        bytes_served: ``(repo_id, path)`` -> body bytes of that file written to the socket by GETs, counted
            after each write (a cut or reset body counts what was sent). A key appears once a body starts.
            Call :meth:`wait_idle` first to read it after a download: the client can see the last bytes
            before the server thread has counted them.
        :meth:`reset_requests` empties them all at once.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.valid_tokens: set[str] = set()
        self.throttle_bps: int | None = None
        self.ignore_range = False
        self.xet = False
        self.lfs_threshold = DEFAULT_LFS_THRESHOLD
        self.tree_page_size = 1000
        self.stall_seconds = 30.0
        self.get_counts: dict[tuple[str, str], int] = {}
        self.max_concurrent_gets: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str]] = []
        self.range_requests: list[tuple[str, str, int]] = []
        self.bytes_served: dict[tuple[str, str], int] = {}
        self._repos: dict[str, _Repo] = {}
        self._faults: dict[tuple[str, str | None], list[_Fault]] = {}  # a queue per key: the first applies
        self._api_faults: dict[tuple[str, str], list[_Fault]] = {}  # (repo_id, route) -> [the fault]
        self._active_gets: dict[tuple[str, str], int] = {}
        self._commit_count = 0
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)  # notified when the last active GET ends
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, to use as ``HF_ENDPOINT`` / ``endpoint=``."""
        if self._server is None:
            raise RuntimeError("HubServer.url is only known once start() has been called")
        return f"http://{self.host}:{self.port}"

    def start(self) -> HubServer:
        """Bind and serve in a daemon thread. Returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"hubserver:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def drop_connections(self) -> None:
        """Cut every open connection now (a network blip); the server keeps serving new ones."""
        if self._server is not None:
            self._server.close_connections()

    def stop(self) -> None:
        """Stop serving and drop every open connection (stalled and throttled responses end at once)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- content

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | int],
        *,
        gated: bool = False,
        branch: str = "main",
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Commit ``files`` (the whole tree) on ``branch`` and return the new commit sha.

        A value is the file's bytes, or a size: that many deterministic pseudo-random bytes. Calling it again
        for the same repo makes a new commit on ``branch`` whose tree is exactly ``files`` (files left out are
        gone); older commits stay resolvable by sha and keep serving their content. ``tags`` maps tag names to
        a revision (branch, tag or sha) resolved after the commit, so ``tags={"v1": "main"}`` tags the new
        commit. ``gated`` applies to the whole repo from now on.

        A generated file depends only on repo, path and size: committing the same size again gives the same
        bytes. To change one file between attempts, give new bytes or a new size here, or use
        :meth:`update_file`, which keeps the other files and always gives new bytes.
        """
        _check_repo_id(repo_id)
        built = {path: self._make_file(repo_id, path, spec) for path, spec in files.items()}
        _check_paths(built)
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(repo_id=repo_id, default_branch=branch))
            repo.gated = gated
            self._commit_count += 1
            sha = _commit_sha(repo_id, branch, repo.branches.get(branch), built, self._commit_count)
            title = f"Commit {self._commit_count} on {branch}"
            repo.commits[sha] = _Commit(sha=sha, files=built, date=_now_iso(), title=title)
            repo.branches[branch] = sha
            for name, target in (tags or {}).items():
                commit = repo.resolve(target)
                if commit is None:
                    raise ValueError(f"tag {name!r}: unknown revision {target!r} in {repo_id}")
                repo.tags[name] = commit.sha
        return sha

    def update_file(self, repo_id: str, path: str, spec: bytes | int, *, branch: str | None = None) -> str:
        """Commit new content for one file on ``branch`` (the default branch) and return the new commit sha.

        The other files of the branch's head commit are kept. ``spec`` is the new bytes, or a size: that many
        pseudo-random bytes from a seed of their own, so they differ from every earlier version even at the
        same size. A new ``path`` is added. Older commits keep serving their content (by sha or tag)::

            old = hub.add_repo("org/m", {"w.bin": 300_000})
            new = hub.update_file("org/m", "w.bin", 300_000)  # same size, other bytes; "main" is now `new`
            assert hub.content("org/m", "w.bin", old) != hub.content("org/m", "w.bin")
        """
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                raise KeyError(f"no repo {repo_id!r}")
            branch = branch or repo.default_branch
            head = repo.resolve(branch) if branch in repo.branches else None
            if head is None:
                raise KeyError(f"{repo_id}: no branch {branch!r}")
            self._commit_count += 1
            count = self._commit_count
            blob = _Blob.of(spec, seed=f"{repo_id}/{path}#commit{count}")
            built = {**head.files, path: _File(path=path, blob=blob, lfs=blob.size >= self.lfs_threshold)}
            _check_paths(built)
            sha = _commit_sha(repo_id, branch, head.sha, built, count)
            title = f"Update {path} (commit {count} on {branch})"
            repo.commits[sha] = _Commit(sha=sha, files=built, date=_now_iso(), title=title)
            repo.branches[branch] = sha
        return sha

    def remove_repo(self, repo_id: str) -> None:
        """Forget a repo and its faults: it answers RepoNotFound from now on."""
        with self._lock:
            self._repos.pop(repo_id, None)
            for key in [key for key in self._faults if key[0] == repo_id]:
                del self._faults[key]
            for api_key in [api_key for api_key in self._api_faults if api_key[0] == repo_id]:
                del self._api_faults[api_key]

    def content(self, repo_id: str, path: str, revision: str | None = None) -> bytes:
        """The bytes a file serves (the whole file in memory: use :meth:`sha256` for big ones)."""
        return self._file(repo_id, path, revision).blob.read_all()

    def sha256(self, repo_id: str, path: str, revision: str | None = None) -> str:
        """The sha256 (hex) of a file's content, streamed once and cached."""
        return self._file(repo_id, path, revision).sha256

    def warm_up(self) -> None:
        """Hash every file now, so the first tree listing or HEAD does not pay for big generated files."""
        with self._lock:
            files = [
                f for repo in self._repos.values() for c in repo.commits.values() for f in c.files.values()
            ]
        for file in files:
            _ = file.blob_id

    def _make_file(self, repo_id: str, path: str, spec: bytes | int) -> _File:
        blob = _Blob.of(spec, seed=f"{repo_id}/{path}")
        return _File(path=path, blob=blob, lfs=blob.size >= self.lfs_threshold)

    def _file(self, repo_id: str, path: str, revision: str | None) -> _File:
        with self._lock:
            repo = self._repos[repo_id]
            commit = repo.resolve(revision or repo.default_branch)
        if commit is None or path not in commit.files:
            raise KeyError(f"{repo_id}@{revision}: no file {path!r}")
        return commit.files[path]

    # -- faults

    def set_fault(
        self,
        repo_id: str,
        path: str | None,
        kind: str,
        *,
        times: int = -1,
        retry_after: int = 1,
        methods: Iterable[str] | None = None,
        cut_at: int | None = None,
        append: bool = False,
    ) -> None:
        """Misbehave on requests for a file (``path=None``: every file of the repo).

        ``kind``:
            ``500``, ``502``, ``504``; ``429`` and ``503`` (send ``Retry-After: retry_after``); ``404``
            (EntryNotFound);
            ``reset``: the headers and half the body, then the connection is closed (FIN);
            ``rst``: the same, but the connection is reset (RST);
            ``stall``: half the body, then nothing until the client leaves, ``stop()`` or ``stall_seconds``;
            ``corrupt``: the byte at the middle of the file (or the first one served after it) is flipped.
        ``cut_at`` (body faults only): for ``reset``/``rst``/``stall``, the absolute file offset where the
        body is cut instead of half the served range (a range that ends at or before it is served whole and
        normally, the fault used up all the same); a response that starts at or after it (a resumed ``Range``
        GET) is cut after half of what remains.
        For ``corrupt``, the absolute offset of the flipped byte (left alone if the response does not
        cover it).
        ``times``: how many requests it affects (-1 = all). ``methods``: which requests it affects; by
        default HEAD and GET for the status faults, GET only for the others (a HEAD has no body).
        ``append``: queue this fault behind those already set for the same ``(repo_id, path)`` instead of
        replacing them; once the first in line has been used ``times`` times the next one applies (a
        ``times=-1`` fault is never used up). Only the first in line is considered: a request of a method it
        does not affect falls through to the repo-wide (``path=None``) faults.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if cut_at is not None and (kind not in BODY_FAULTS or cut_at < 0):
            raise ValueError(f"cut_at={cut_at!r}: expected an offset >= 0 for one of {sorted(BODY_FAULTS)}")
        default = ("HEAD", "GET") if kind in STATUS_FAULTS else ("GET",)
        chosen = frozenset(m.upper() for m in (methods or default))
        fault = _Fault(kind, times, retry_after, chosen, cut_at)
        with self._lock:
            queue = self._faults.setdefault((repo_id, path), []) if append else []
            queue.append(fault)
            self._faults[(repo_id, path)] = queue

    def set_api_fault(self, repo_id: str, route: str, kind: str, *, times: int = -1, retry_after: int = 1) -> None:
        """Misbehave on the API calls of one route for a repo (which need not exist), replacing its fault.

        ``route``: ``refs`` (``/api/models/{repo}/refs``, list_repo_refs), ``info`` (``/api/models/{repo}`` and
        ``/api/models/{repo}/revision/{rev}``, model_info / repo_info) or ``tree``
        (``/api/models/{repo}/tree/{rev}[/{path}]``, every page of list_repo_tree).
        ``kind``: ``500``, ``502``, ``504``; ``429`` and ``503`` (send ``Retry-After: retry_after``); ``404``
        (answered like a repo that does not exist: RepositoryNotFoundError); ``stall`` (no answer at all until
        the client leaves, ``stop()`` or ``stall_seconds``, then the connection is closed).
        ``times``: how many calls it affects (-1 = all); a fault used up is forgotten. HEAD and GET alike.

        Raises:
            ValueError: an unknown ``route`` or ``kind``.
        """
        if route not in API_ROUTES:
            raise ValueError(f"unknown API route {route!r}; expected one of {sorted(API_ROUTES)}")
        if kind not in API_FAULT_KINDS:
            raise ValueError(f"unknown API fault kind {kind!r}; expected one of {sorted(API_FAULT_KINDS)}")
        fault = _Fault(kind, times, retry_after, frozenset({"HEAD", "GET"}))
        with self._lock:
            self._api_faults[(repo_id, route)] = [fault]

    def clear_faults(self) -> None:
        """Forget every fault, queued ones and API faults included."""
        with self._lock:
            self._faults.clear()
            self._api_faults.clear()

    def api_calls(self, route: str, repo_id: str | None = None) -> int:
        """How many requests in ``requests`` went to ``route`` (for ``repo_id`` only, if given).

        ``route`` is ``refs``, ``info``, ``tree`` (each page counts) or ``resolve`` (HEADs and GETs of files);
        requests of every method count, those answered with an error or a fault too.

        Raises:
            ValueError: an unknown ``route``.
        """
        if route not in COUNTED_ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {sorted(COUNTED_ROUTES)}")
        with self._lock:
            paths = [path for _, path in self.requests]
        routes = (_request_route(path) for path in paths)
        return sum(1 for found in routes if found and found[0] == route and repo_id in (None, found[1]))

    def reset_requests(self) -> None:
        """Empty every record in place, under the lock.

        That is ``requests``, ``range_requests``, ``get_counts``, ``bytes_served`` and ``max_concurrent_gets``; a
        body still streaming goes on counting into ``bytes_served`` (call :meth:`wait_idle` first).
        """
        with self._lock:
            self.requests.clear()
            self.range_requests.clear()
            self.get_counts.clear()
            self.bytes_served.clear()
            self.max_concurrent_gets.clear()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no GET is being served, so the records (``bytes_served``) are settled.

        Raises TimeoutError after ``timeout`` seconds (a ``stall`` holds its GET until the client leaves).
        """
        with self._idle:
            if not self._idle.wait_for(lambda: not any(self._active_gets.values()), timeout):
                raise TimeoutError(f"GETs still active after {timeout} s: {self._active_gets}")

    def _take_fault(self, repo_id: str, path: str, method: str) -> _Fault | None:
        with self._lock:
            for key in ((repo_id, path), (repo_id, None)):
                if (fault := _take_first(self._faults, key, method)) is not None:
                    return fault
        return None

    def _take_api_fault(self, repo_id: str, route: str, method: str) -> _Fault | None:
        with self._lock:
            return _take_first(self._api_faults, (repo_id, route), method)

    # -- used by the request handler

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _record_range(self, repo_id: str, path: str, start: int) -> None:
        with self._lock:
            self.range_requests.append((repo_id, path, start))

    def _get_started(self, key: tuple[str, str]) -> None:
        with self._lock:
            self.get_counts[key] = self.get_counts.get(key, 0) + 1
            active = self._active_gets[key] = self._active_gets.get(key, 0) + 1
            self.max_concurrent_gets[key] = max(self.max_concurrent_gets.get(key, 0), active)

    def _get_finished(self, key: tuple[str, str]) -> None:
        with self._idle:
            self._active_gets[key] -= 1
            if not any(self._active_gets.values()):
                self._idle.notify_all()

    def _count_bytes(self, key: tuple[str, str], count: int) -> None:
        with self._lock:
            self.bytes_served[key] = self.bytes_served.get(key, 0) + count

    def _refs(self, repo_id: str, token: str | None) -> dict[str, Any]:
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                raise _repo_not_found(token)
            return _refs(repo)

    def _repo_commit(self, repo_id: str, revision: str | None, token: str | None) -> tuple[_Repo, _Commit]:
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                raise _repo_not_found(token)
            commit = repo.resolve(revision or repo.default_branch)
            if commit is None:
                raise _revision_not_found(revision or repo.default_branch)
            return repo, commit

    def _resolve_file(
        self, repo_id: str, revision: str, path: str, token: str | None, method: str
    ) -> tuple[_Commit, _File, _Fault | None]:
        """The file a resolve request asks for, after the checks the Hub makes, and the fault to apply."""
        repo, commit = self._repo_commit(repo_id, revision, token)
        if repo.gated and token not in self.valid_tokens:
            raise _gated(repo_id, token)
        file = commit.files.get(path)
        if file is None:
            raise _entry_not_found(commit)
        fault = self._take_fault(repo_id, path, method)
        if fault is not None and fault.kind in STATUS_FAULTS:
            raise _fault_error(fault, commit)
        return commit, file, fault


_Key = TypeVar("_Key")


def _take_first(queues: dict[_Key, list[_Fault]], key: _Key, method: str) -> _Fault | None:
    """The first fault queued under ``key`` if it affects ``method``, counted as used (and dropped if used up)."""
    queue = queues.get(key)
    if not queue or method not in queue[0].methods:
        return None
    fault = queue[0]
    if fault.remaining > 0:
        fault.remaining -= 1
    if fault.remaining == 0:
        queue.pop(0)
        if not queue:
            del queues[key]
    return fault


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if not 1 <= len(parts) <= 2 or not all(_REPO_PART.fullmatch(part) for part in parts):
        raise ValueError(f"invalid repo id {repo_id!r}: expected 'org/name' (or 'name')")


def _check_paths(files: Mapping[str, _File]) -> None:
    for path in files:
        parts = path.split("/")
        if not path or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"invalid file path {path!r}")
    directories = {path.rsplit("/", i)[0] for path in files for i in range(1, path.count("/") + 1)}
    if clash := directories & set(files):
        raise ValueError(f"paths used both as a file and as a folder: {sorted(clash)}")


def _commit_sha(repo_id: str, branch: str, parent: str | None, files: Mapping[str, _File], count: int) -> str:
    lines = [repo_id, branch, str(parent), str(count)]
    lines += [f"{path} {files[path].blob.describe()}" for path in sorted(files)]
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ------------------------------------------------------------------------------------------------- API views


def _model_info(repo: _Repo, commit: _Commit, with_blobs: bool) -> dict[str, Any]:
    files = [commit.files[path] for path in sorted(commit.files)]
    return {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
        "sha": commit.sha,
        "lastModified": commit.date,
        "createdAt": commit.date,
        "private": False,
        "gated": "manual" if repo.gated else False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": [file.sibling(with_blobs) for file in files],
        "usedStorage": sum(file.blob.size for file in files),
    }


def _tree(commit: _Commit, path: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    """A tree listing like ``/api/models/{repo}/tree/{rev}/{path}``: folders first, then files, by path."""
    directories = commit.directories()
    if path and path not in directories:
        raise _entry_not_found(commit)
    prefix = f"{path}/" if path else ""

    def wanted(item: str) -> bool:
        return item.startswith(prefix) and (recursive or "/" not in item[len(prefix) :])

    last_commit = commit.last_commit() if expand else None
    folders: list[dict[str, Any]] = []
    for folder in sorted(filter(wanted, directories)):
        oid = hashlib.sha1(f"{commit.sha}:{folder}".encode()).hexdigest()
        entry: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": folder}
        if last_commit is not None:
            entry["lastCommit"] = last_commit
        folders.append(entry)
    files = [commit.files[item].tree_entry(last_commit) for item in sorted(filter(wanted, commit.files))]
    return folders + files


def _refs(repo: _Repo) -> dict[str, Any]:
    def refs(names: Mapping[str, str], kind: str) -> list[dict[str, str]]:
        return [
            {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha} for n, sha in sorted(names.items())
        ]

    return {
        "branches": refs(repo.branches, "heads"),
        "converts": [],
        "tags": refs(repo.tags, "tags"),
        "pullRequests": [],
    }


def _split_repo_id(segments: list[str]) -> tuple[str, list[str]]:
    """``["org", "name", "tree", ...]`` -> ``("org/name", ["tree", ...])``; single-name repos too."""
    if len(segments) >= 2 and segments[1] not in _API_SUBPATHS:
        return f"{unquote(segments[0])}/{unquote(segments[1])}", segments[2:]
    return unquote(segments[0]) if segments else "", segments[1:]


def _api_route(tail: list[str]) -> str | None:
    """The route of ``/api/models/{repo}/...`` by what follows the repo id: refs, info, tree (or None)."""
    match tail:
        case [] | ["revision", _]:
            return "info"
        case ["tree", _, *_]:
            return "tree"
        case ["refs"]:
            return "refs"
    return None


def _resolve_target(segments: list[str]) -> tuple[str, str, str] | None:
    """``(repo_id, revision, path)`` of a ``/{repo}/resolve/{rev}/{path}`` URL path's segments (or None)."""
    at = 2 if len(segments) > 2 and segments[2] == "resolve" else 1
    if len(segments) < at + 3 or segments[at] != "resolve":
        return None
    repo_id = "/".join(unquote(part) for part in segments[:at])
    return repo_id, unquote(segments[at + 1]), unquote("/".join(segments[at + 2 :]))


def _request_route(path: str) -> tuple[str, str] | None:
    """``(route, repo_id)`` of a URL path as the handler routes it: refs, info, tree or resolve (or None)."""
    segments = path.split("/")[1:]
    if segments[:1] == ["api"]:
        if segments[1:2] != ["models"]:
            return None
        repo_id, tail = _split_repo_id(segments[2:])
        route = _api_route(tail)
        return (route, repo_id) if route is not None else None
    target = _resolve_target(segments)
    return ("resolve", target[0]) if target is not None else None


def _is_true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single-range ``Range`` header; None to ignore it; 416 if unsatisfiable."""
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), min(int(last) + 1, size) if last else size
    if start >= size or start >= end:
        raise _HubError(416, "Requested range not satisfiable", None, {"Content-Range": f"bytes */{size}"})
    return start, end


# --------------------------------------------------------------------------------------------------- handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("hubserver: connection from %s ended: %s", client_address, error)
        else:
            log.exception("hubserver: error while serving %s", client_address)


class _Pacer:
    """Writes a response body in small pieces, at most ``hub.throttle_bps`` bytes per second if set.

    The rate is read before every piece; when it changes, the schedule starts again from that moment, so a
    lower rate does not pause to make up for the bytes sent faster before. With ``key``, each piece written
    is added to ``hub.bytes_served[key]``.
    """

    def __init__(self, hub: HubServer, out: Any, key: tuple[str, str] | None = None) -> None:
        self.hub = hub
        self.out = out
        self.key = key
        self.started = time.monotonic()
        self.sent = 0
        self._rate = hub.throttle_bps
        self._since, self._sent_since = self.started, 0  # when the current rate began, bytes sent since

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            rate = self.hub.throttle_bps
            if rate != self._rate:
                self._rate, self._since, self._sent_since = rate, time.monotonic(), 0
            piece = view[: max(1, min(_WRITE_CHUNK, rate // 20))] if rate else view
            self.out.write(piece)
            self.sent += len(piece)
            self._sent_since += len(piece)
            if self.key is not None:
                self.hub._count_bytes(self.key, len(piece))
            view = view[len(piece) :]
            if rate:
                delay = self._since + self._sent_since / rate - time.monotonic()
                if delay > 0 and self.hub._stopping.wait(delay):
                    raise ConnectionAbortedError("hub server stopping")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HubServer/1.0"
    timeout = 300  # idle keep-alive connections (httpx drops its own after 5 s)
    # Headers and body go out in separate writes: without TCP_NODELAY each response waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("hubserver: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._unsupported()

    do_PUT = do_DELETE = do_PATCH = do_POST

    # -- routing

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def _token(self) -> str | None:
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.hub._record(method, url.path)
        segments = url.path.split("/")[1:]
        try:
            if segments[:1] == ["api"]:
                self._api(method, segments[1:], dict(parse_qsl(url.query)), url.path)
            else:
                self._resolve(method, segments)
        except _HubError as error:
            self._send_error(method, error)
        except OSError as error:  # the client went away, or stop()
            log.debug("hubserver: %s %s aborted: %s", method, url.path, error)
            self.close_connection = True

    def _unsupported(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._send_error(self.command, _HubError(405, f"{self.command} is not supported by this test hub"))

    def _api(self, method: str, segments: list[str], query: dict[str, str], path: str) -> None:
        if segments == ["agent-harnesses"]:  # huggingface_hub's user agent fetches it unless telemetry is off
            self._send_json(method, _EMPTY_AGENT_REGISTRY)
            return
        if segments[:1] in (["datasets"], ["spaces"], ["kernels"]):
            raise _repo_not_found(self._token())
        if segments[:1] != ["models"]:
            raise _HubError(404, "Not Found")
        repo_id, tail = _split_repo_id(segments[1:])
        route = _api_route(tail)
        if route is None:
            raise _HubError(404, "Not Found")
        if self._stalled_by_api_fault(method, repo_id, route):
            return
        if route == "refs":
            self._send_json(method, self.hub._refs(repo_id, self._token()))
        elif route == "tree":
            self._tree(method, repo_id, unquote(tail[1]), unquote("/".join(tail[2:])), query, path)
        else:
            self._model_info(method, repo_id, unquote(tail[1]) if tail else None, query)

    def _stalled_by_api_fault(self, method: str, repo_id: str, route: str) -> bool:
        """Apply the API fault set for this call, if any: raise its error, or stall and return True."""
        fault = self.hub._take_api_fault(repo_id, route, method)
        if fault is None:
            return False
        if fault.kind != "stall":
            raise _api_fault_error(fault, self._token())
        self._cut("stall")  # nothing was sent: the client sees the connection close without a response
        return True

    def _model_info(self, method: str, repo_id: str, revision: str | None, query: dict[str, str]) -> None:
        repo, commit = self.hub._repo_commit(repo_id, revision, self._token())
        info = _model_info(repo, commit, with_blobs=_is_true(query.get("blobs")))
        expand = [value for key, value in parse_qsl(urlsplit(self.path).query) if key == "expand"]
        if expand:  # as the Hub: only the properties asked for (with the id), no file list
            info = {key: value for key, value in info.items() if key in {"_id", "id", *expand}}
        self._send_json(method, info)

    def _tree(
        self, method: str, repo_id: str, revision: str, path: str, query: dict[str, str], url_path: str
    ) -> None:
        _, commit = self.hub._repo_commit(repo_id, revision, self._token())
        entries = _tree(
            commit, path.strip("/"), _is_true(query.get("recursive")), _is_true(query.get("expand"))
        )
        start = int(query.get("cursor") or 0)
        end = start + max(1, self.hub.tree_page_size)
        headers = {}
        if end < len(entries):
            next_url = f"http://{self.headers.get('Host')}{url_path}?{urlencode({**query, 'cursor': end})}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send_json(method, entries[start:end], headers)

    def _resolve(self, method: str, segments: list[str]) -> None:
        target = _resolve_target(segments)
        if target is None:
            raise _HubError(404, "Not Found")
        repo_id, revision, path = target
        key = (repo_id, path)
        if method == "GET":
            self.hub._get_started(key)
        try:
            commit, file, fault = self.hub._resolve_file(repo_id, revision, path, self._token(), method)
            self._send_file(method, repo_id, commit, file, fault)
        finally:
            if method == "GET":
                self.hub._get_finished(key)

    # -- responses

    def _send(self, method: str, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in {
            "Content-Length": str(len(body)),
            "X-Request-Id": str(uuid.uuid4()),
            **headers,
        }.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, method: str, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(method, 200, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)

    def _send_error(self, method: str, error: _HubError) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": error.message}
        if error.code is not None:
            headers["X-Error-Code"] = error.code
        self._send(
            method, error.status, {**headers, **error.headers}, json.dumps({"error": error.message}).encode()
        )

    def _send_file(
        self, method: str, repo_id: str, commit: _Commit, file: _File, fault: _Fault | None
    ) -> None:
        start, end = 0, file.blob.size
        requested = self.headers.get("Range") if method == "GET" else None
        ignore_range = self.hub.ignore_range
        byte_range = None
        if requested:
            try:
                byte_range = _parse_range(requested, file.blob.size)
            except _HubError:  # unsatisfiable: 416, unless Range is ignored
                if not ignore_range:
                    raise
            if byte_range is not None:
                self.hub._record_range(repo_id, file.path, byte_range[0])
            if ignore_range:
                byte_range = None
        if byte_range is not None:
            start, end = byte_range
        self.send_response(206 if byte_range else 200)
        headers = _file_headers(commit, file, start, end, byte_range is not None)
        if self.hub.xet:
            headers |= {"X-Xet-Hash": file.sha256,
                        "X-Xet-Refresh-Route": f"/api/models/{repo_id}/xet-read-token/{commit.sha}"}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method == "GET":
            self._stream((repo_id, file.path), file.blob, start, end, fault)

    def _stream(self, key: tuple[str, str], blob: _Blob, start: int, end: int, fault: _Fault | None) -> None:
        kind = fault.kind if fault is not None else None
        cut_at = fault.cut_at if fault is not None else None
        stop_at, cut = end, kind in _CUT_FAULTS
        if cut and (cut_at is None or cut_at <= start):  # no cut_at, or a resumed GET that starts past it
            stop_at = start + (end - start) // 2
        elif cut and cut_at is not None:
            stop_at = min(cut_at, end)
            cut = cut_at < end  # a range that ends before cut_at is served whole, and normally
        flip_at = -1
        if kind == "corrupt":
            flip_at = cut_at if cut_at is not None else max(start, blob.size // 2)
        self.hub._count_bytes(key, 0)
        pacer = _Pacer(self.hub, self.wfile, key)
        position = start
        for chunk in blob.chunks(start, stop_at):
            if position <= flip_at < position + len(chunk):
                index = flip_at - position
                chunk = chunk[:index] + bytes([chunk[index] ^ 0xFF]) + chunk[index + 1 :]
            pacer.write(chunk)
            position += len(chunk)
        if cut:
            self._cut(kind)

    def _cut(self, kind: str | None) -> None:
        """End a response early: FIN (``reset``), RST (``rst``) or silence, then FIN (``stall``)."""
        self.close_connection = True
        if kind == "stall":
            deadline = time.monotonic() + self.hub.stall_seconds
            while time.monotonic() < deadline and not self.hub._stopping.is_set():
                if _client_left(self.connection, 0.1):
                    break
        elif kind == "rst":
            # Linger 0 turns close() into a RST. The socket really closes once rfile (a makefile()) is closed
            # too; wfile writes straight to the socket and may stay open for the flushes that follow.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.rfile.close()


def _file_headers(commit: _Commit, file: _File, start: int, end: int, partial: bool) -> dict[str, str]:
    name = file.path.rsplit("/", 1)[-1].encode("ascii", "replace").decode().replace('"', "")
    headers = {
        "Content-Length": str(end - start),
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'inline; filename="{name}";',
        "Accept-Ranges": "bytes",
        "ETag": f'"{file.etag}"',
        "X-Repo-Commit": commit.sha,
        "X-Request-Id": str(uuid.uuid4()),
    }
    if file.lfs:
        headers |= {"X-Linked-Etag": f'"{file.sha256}"', "X-Linked-Size": str(file.blob.size)}
    if partial:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.blob.size}"
    return headers


def _client_left(connection: socket.socket, timeout: float) -> bool:
    """True once the peer closed (or sent anything, which an HTTP/1.1 client does not mid-response)."""
    try:
        readable, _, _ = select.select([connection], [], [], timeout)
    except (OSError, ValueError):
        return True
    return bool(readable)


# ------------------------------------------------------------------------------------ huggingface_hub setup


def hf_env(url: str) -> dict[str, str]:
    """Environment variables that make a *new* process's huggingface_hub talk to ``url`` only."""
    return {
        "HF_ENDPOINT": url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",  # else the first request also fetches {ENDPOINT}/api/agent-harnesses
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": "0",
    }


def point_huggingface_hub_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Make this process's (already imported) huggingface_hub talk to ``url`` only, with no implicit token.

    Sets :func:`hf_env` and patches the ``huggingface_hub.constants`` values that are read from the
    environment at import time. The stored/env token is hidden, so a test passes ``token=`` explicitly.
    """
    from huggingface_hub import constants

    hf_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # `utils.tqdm` the attribute is a class

    for name, value in hf_env(url).items():
        monkeypatch.setenv(name, value)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    no_token = os.path.join(tempfile.gettempdir(), f"hubserver-no-token-{uuid.uuid4().hex}", "token")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", no_token)
    monkeypatch.setattr(hf_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True)


# ------------------------------------------------------------------------------------------------------- CLI

_SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _parse_size(text: str) -> int:
    """``123``, ``4K``, ``10M``, ``1G`` (binary multiples; a trailing ``B``/``iB`` is allowed)."""
    match = re.fullmatch(r"(\d+)\s*([KMG]?)(?:I?B)?", text.strip().upper())
    if match is None:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    return int(match.group(1)) * _SIZE_SUFFIXES[match.group(2)]


def _parse_repo(text: str) -> tuple[str, dict[str, int]]:
    """``org/name:file=size,dir/file=size``."""
    repo_id, _, spec = text.partition(":")
    files: dict[str, int] = {}
    for item in filter(None, spec.split(",")):
        name, equals, size = item.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"bad file spec {item!r}: expected name=size")
        files[name.strip()] = _parse_size(size)
    return repo_id.strip(), files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hubserver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (the default)")
    parser.add_argument(
        "--repo", type=_parse_repo, action="append", default=[], metavar="ORG/NAME:FILE=SIZE,..."
    )
    parser.add_argument("--gated-repo", type=_parse_repo, action="append", default=[], metavar="ORG/NAME:...")
    parser.add_argument("--token", action="append", default=[], help="a token that may read gated repos")
    parser.add_argument("--throttle-bps", type=_parse_size, default=None, help="bytes/s per response body")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    hub = HubServer(host=args.host, port=args.port)
    hub.valid_tokens.update(args.token)
    hub.throttle_bps = args.throttle_bps
    commits = [(repo_id, hub.add_repo(repo_id, files)) for repo_id, files in args.repo]
    commits += [(repo_id, hub.add_repo(repo_id, files, gated=True)) for repo_id, files in args.gated_repo]
    hub.warm_up()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    hub.start()
    print(hub.url, flush=True)
    for repo_id, sha in commits:
        log.info("%s %s", repo_id, sha)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
