"""The models volume, read and pruned through huggingface_hub's cache API (``scan_cache_dir``).

The volume uses the standard HF cache layout, so models fetched with ``hf download --cache-dir`` can be
adopted and ours can be used by any HF library::

    <cache_dir>/models--org--name/
        blobs/<etag>                    file contents (``<etag>.incomplete`` while downloading, kept
                                        between attempts so the next one resumes it)
        snapshots/<commit>/<path>       symlinks into blobs/
        refs/<branch or tag>            commit id

Every path this module deletes is resolved and checked to lie inside ``cache_dir`` first; anything else is
refused with :class:`~app.core.errors.InvalidInputError` before a file is touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import (
    CachedRepoInfo,
    CachedRevisionInfo,
    DeleteCacheStrategy,
    HFCacheInfo,
    scan_cache_dir,
)
from huggingface_hub.errors import CacheNotFound
from huggingface_hub.file_download import repo_folder_name

from app.core.errors import InvalidInputError
from app.core.validation import COMMIT_ID, show, validate_repo_id

log = logging.getLogger(__name__)

_INCOMPLETE = ".incomplete"


@dataclass(frozen=True)
class CachedModel:
    """One revision of a model repo found on the models volume."""

    repo_id: str
    commit: str
    refs: tuple[str, ...]
    size_on_disk: int
    nb_files: int
    last_modified: float


def repo_dir(repo_id: str, cache_dir: Path) -> Path:
    """The folder of ``repo_id`` in ``cache_dir`` (``models--org--name``), checked to lie inside it.

    Raises:
        InvalidModelNameError: ``repo_id`` is not ``org/name``.
        InvalidInputError: the folder would be outside ``cache_dir``.
    """
    folder = repo_folder_name(repo_id=validate_repo_id(repo_id), repo_type="model")
    return _inside(cache_dir.resolve(), cache_dir.resolve() / folder)


def snapshot_dir(repo_id: str, commit: str, cache_dir: Path) -> Path:
    """The snapshot folder of ``commit``; see :func:`repo_dir`.

    Raises:
        InvalidInputError: ``commit`` is not a 40-character commit id, or the path leaves ``cache_dir``.
    """
    return _inside(cache_dir.resolve(), repo_dir(repo_id, cache_dir) / "snapshots" / _checked_commit(commit))


def scan_models(cache_dir: Path) -> list[CachedModel]:
    """Every revision of every model repo in ``cache_dir`` (for adopting models put there by ``hf download``).

    Repos the scan finds corrupted, and names that are not ``org/name``, are logged and skipped.
    """
    info = _scan(cache_dir)
    if info is None:
        return []
    for warning in info.warnings:
        log.warning("skipped a damaged folder in the models volume: %s", warning)
    models = [_cached_model(repo, rev) for repo in info.repos if _adoptable(repo) for rev in repo.revisions]
    return sorted(models, key=lambda m: (m.repo_id, m.commit))


def _cached_model(repo: CachedRepoInfo, rev: CachedRevisionInfo) -> CachedModel:
    return CachedModel(
        repo_id=repo.repo_id,
        commit=rev.commit_hash,
        refs=tuple(sorted(rev.refs)),
        size_on_disk=rev.size_on_disk,
        nb_files=rev.nb_files,
        last_modified=rev.last_modified,
    )


def _adoptable(repo: CachedRepoInfo) -> bool:
    if repo.repo_type != "model":
        return False
    try:
        validate_repo_id(repo.repo_id)
    except InvalidInputError:
        log.warning("skipped %s in the models volume: not an org/name model id", show(repo.repo_id))
        return False
    return True


def size_on_disk(repo_id: str, commit: str, cache_dir: Path) -> int:
    """Bytes used by the files of one snapshot (each blob counted once); 0 when it is not there."""
    snapshot = snapshot_dir(repo_id, commit, cache_dir)
    if not snapshot.is_dir():
        return 0
    sizes = {os.path.realpath(p): _size(p) for p in snapshot.rglob("*") if p.is_file()}
    return sum(sizes.values())


def is_present(repo_id: str, commit: str, cache_dir: Path, *, files: Collection[str] | None = None) -> bool:
    """Whether the snapshot is on disk: every path in ``files``, or, without ``files``, at least one file
    and no dangling link."""
    snapshot = snapshot_dir(repo_id, commit, cache_dir)
    if not snapshot.is_dir():
        return False
    if files is not None:
        return all((snapshot / _checked_relative(path)).is_file() for path in files)
    entries = [p for p in snapshot.rglob("*") if not p.is_dir()]
    return bool(entries) and all(p.is_file() for p in entries)


def delete_revision(repo_id: str, commit: str | None, *, cache_dir: Path) -> int:
    """Delete one revision (every revision when ``commit`` is None) of ``repo_id``; return the bytes freed.

    Blobs another revision still links to stay. Deleting every revision also removes the repo's ``*.incomplete``
    files and its folder: do not do that while the repo is downloading. Deleting one revision leaves partial
    files alone (another record of the repo may be resuming them; the sweep takes stale ones).

    Raises:
        InvalidModelNameError: ``repo_id`` is not ``org/name``.
        InvalidInputError: ``commit`` is not a commit id, or a path to delete lies outside ``cache_dir``.
    """
    root = cache_dir.resolve()
    folder = repo_dir(repo_id, cache_dir)
    commits = None if commit is None else {_checked_commit(commit)}
    if folder.is_symlink() and commits is None:  # a repo kept elsewhere: drop the link, not what it points to
        folder.unlink()
        return 0
    if not folder.is_dir():
        return 0
    _repair(folder, root)
    freed = _remove_incomplete(folder, root, older_than_s=0.0) if commits is None else 0
    freed += _delete_revisions(root, folder, commits)
    return freed + _prune(folder, root)


def point_ref(repo_id: str, branch: str, commit: str, *, cache_dir: Path) -> None:
    """Make ``refs/<branch>`` name ``commit`` again if its snapshot is on the volume (an update's dry run moves
    the ref to the new commit before any of its files is there; offline loaders must keep finding the old one)."""
    if not snapshot_dir(repo_id, commit, cache_dir).is_dir():
        return
    folder = repo_dir(repo_id, cache_dir)
    ref = _inside(cache_dir.resolve(), folder / "refs" / _checked_relative(branch))
    if ref.is_file() and ref.read_text().strip() == commit:
        return
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)


@contextmanager
def access_times_kept(repo_id: str, commit: str, cache_dir: Path) -> Iterator[None]:
    """Put the access times of a snapshot's blobs back after the block reads them (verification), so last use
    stays the users' and eviction does not take our own reads for use."""
    snapshot = snapshot_dir(repo_id, commit, cache_dir)
    kept: dict[str, tuple[float, float]] = {}
    for folder, _, names in os.walk(snapshot):
        for name in names:
            with suppress(OSError):
                blob = os.path.realpath(os.path.join(folder, name))
                info = os.stat(blob)
                kept[blob] = (info.st_atime, info.st_mtime)
    try:
        yield
    finally:
        for blob, times in kept.items():
            with suppress(OSError):
                os.utime(blob, times)


def last_access(repo_id: str, commit: str, cache_dir: Path) -> float | None:
    """The latest access time of the files of one snapshot (their blobs, through the links), read with ``stat``
    only; None when the snapshot is not there. The signal ``hf cache ls --filter "accessed>30d"`` uses."""
    snapshot = snapshot_dir(repo_id, commit, cache_dir)
    latest: float | None = None
    for folder, _, names in os.walk(snapshot):
        for name in names:
            try:
                atime = os.stat(os.path.join(folder, name)).st_atime
            except OSError:  # a dangling link: reconcile flags it
                continue
            latest = atime if latest is None else max(latest, atime)
    return latest


def delete_files(repo_id: str, commit: str, paths: Iterable[str], *, cache_dir: Path) -> int:
    """Delete files of one snapshot together with their blobs, so a new download fetches them again.

    Other snapshot links to the same blobs are removed too, so no link is left dangling.

    Raises:
        InvalidInputError: a path is absolute or has a ``..`` part, or lies outside ``cache_dir``.
    """
    root = cache_dir.resolve()
    snapshot = snapshot_dir(repo_id, commit, cache_dir)
    return sum(_delete_file(root, snapshot, _checked_relative(path)) for path in paths)


def sweep_incomplete(cache_dir: Path, *, older_than_s: float, keep_repos: Collection[str] = ()) -> int:
    """Remove ``*.incomplete`` files untouched for ``older_than_s`` seconds, except in the repos of
    ``keep_repos`` (repo ids whose records may still resume them). Returns how many files were removed."""
    root = cache_dir.resolve()
    kept = {repo_folder_name(repo_id=r, repo_type="model") for r in keep_repos}
    removed = 0
    cutoff = time.time() - older_than_s
    for path in root.glob(f"*/blobs/*{_INCOMPLETE}"):
        if path.parent.parent.name in kept:
            continue
        if _mtime(path) <= cutoff and _unlink(_inside(root, path)) is not None:
            removed += 1
    return removed


def delete_partials(repo_id: str, *, cache_dir: Path) -> int:
    """Remove every ``*.incomplete`` file of ``repo_id``; return the bytes freed."""
    folder = repo_dir(repo_id, cache_dir)
    return _remove_incomplete(folder, cache_dir.resolve(), older_than_s=0.0) if folder.is_dir() else 0


def partial_bytes(repo_id: str, cache_dir: Path) -> int:
    """Bytes in the partial files of ``repo_id`` (what its next attempt need not fetch again)."""
    return sum(_size(p) for p in (repo_dir(repo_id, cache_dir) / "blobs").glob(f"*{_INCOMPLETE}"))


def file_in_snapshot(snapshot: Path, path: str) -> Path:
    """The link of repo file ``path`` in ``snapshot``; a name from the Hub must not lead out of it.

    Raises:
        InvalidInputError: ``path`` is absolute or has a ``..`` or empty part.
    """
    return snapshot / _checked_relative(path)


# -- deleting --------------------------------------------------------------------------------------------


def _delete_revisions(root: Path, folder: Path, commits: set[str] | None) -> int:
    info = _scan(root)
    repo = next((r for r in info.repos if r.repo_path == folder), None) if info else None
    if repo is None:
        return 0
    wanted = [r.commit_hash for r in repo.revisions if commits is None or r.commit_hash in commits]
    if not wanted:
        return 0
    assert info is not None
    strategy = info.delete_revisions(*wanted)
    _check_strategy(strategy, root)
    orphans = _orphan_bytes(repo) if folder in strategy.repos else 0
    strategy.execute()
    return strategy.expected_freed_size + orphans


def _orphan_bytes(repo: CachedRepoInfo) -> int:
    """Bytes of blobs no snapshot links to (a worker killed between writing a blob and linking it)."""
    linked = {file.blob_path for rev in repo.revisions for file in rev.files}
    blobs = (repo.repo_path / "blobs").glob("*")
    return sum(_size(p) for p in blobs if p not in linked and p.is_file() and not p.is_symlink())


def _check_strategy(strategy: DeleteCacheStrategy, root: Path) -> None:
    for path in (*strategy.repos, *strategy.snapshots, *strategy.refs, *strategy.blobs, *strategy.files):
        _inside(root, path)


def _delete_file(root: Path, snapshot: Path, relative: str) -> int:
    entry = _inside(root, snapshot / relative)
    if not entry.is_symlink():
        return _unlink(entry) or 0
    blob = _inside(root, _link_target(entry))
    for link in _links_to(blob, snapshot.parent):
        _unlink(_inside(root, link))
    return _unlink(blob) or 0


def _links_to(blob: Path, snapshots: Path) -> list[Path]:
    return [p for p in snapshots.rglob("*") if p.is_symlink() and _link_target(p) == blob]


def _remove_incomplete(folder: Path, root: Path, *, older_than_s: float) -> int:
    cutoff = time.time() - older_than_s
    freed = 0
    for path in (folder / "blobs").glob(f"*{_INCOMPLETE}"):
        if _mtime(path) <= cutoff:
            freed += _unlink(_inside(root, path)) or 0
    return freed


def _repair(folder: Path, root: Path) -> None:
    """Drop what makes ``scan_cache_dir`` skip a repo as corrupted: refs to absent snapshots (a dry run writes
    refs before any snapshot exists) and dangling snapshot links."""
    snapshots = folder / "snapshots"
    for ref in (folder / "refs").rglob("*"):
        target = ref.read_text().strip() if ref.is_file() else ""
        if ref.is_file() and not (COMMIT_ID.fullmatch(target) and (snapshots / target).is_dir()):
            _unlink(_inside(root, ref))
    for link in snapshots.rglob("*"):
        if link.is_symlink() and not link.exists():
            _unlink(_inside(root, link))


def _prune(folder: Path, root: Path) -> int:
    """Remove the repo folder (and its lock folder) when no snapshot is left; return the bytes freed."""
    snapshots = folder / "snapshots"
    if folder.exists() and snapshots.is_dir() and any(snapshots.iterdir()):
        return 0
    freed = sum(_size(p) for p in (folder / "blobs").glob("*") if p.is_file() and not p.is_symlink())
    for path in (folder, root / ".locks" / folder.name):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(_inside(root, path))
    return freed


# -- paths -----------------------------------------------------------------------------------------------


def _inside(root: Path, path: Path) -> Path:
    """``path`` with its parent resolved (the last part may be a link that is itself deleted), if it lies
    strictly inside ``root``."""
    located = path.parent.resolve() / path.name
    if located == root or not located.is_relative_to(root) or path.name in ("", ".", ".."):
        raise InvalidInputError(
            f"Refusing to touch {show(str(path))}: it is outside the models directory "
            f"{root}. Check MODELDEPOT_MODELS_DIR and the links in it."
        )
    return located


def _link_target(link: Path) -> Path:
    return Path(os.path.abspath(link.parent / os.readlink(link)))


def _checked_commit(commit: str) -> str:
    if not COMMIT_ID.fullmatch(commit):
        raise InvalidInputError(
            f"Commit {show(commit)} is not a 40-character commit id, "
            "e.g. 7ae557604adf67be50417f59c2c2f167def9a775."
        )
    return commit


def _checked_relative(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or "" in parts or ".." in parts or "." in parts:
        raise InvalidInputError(
            f"File path {show(path)} must be relative to the repository, e.g. config.json or onnx/model.onnx."
        )
    return "/".join(parts)


def _scan(cache_dir: Path) -> HFCacheInfo | None:
    try:
        return scan_cache_dir(cache_dir)
    except CacheNotFound:
        return None


def _unlink(path: Path) -> int | None:
    """Remove a file or link; return the bytes it held (0 for a link), or None when it was already gone."""
    try:
        size = 0 if path.is_symlink() else path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return None
    return size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
