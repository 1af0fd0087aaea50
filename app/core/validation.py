"""Validation of user input that names things on the Hub: model names, revisions, file patterns.

Pure functions, no I/O. Each returns the cleaned value or raises :class:`~app.core.errors.InvalidInputError`
(:class:`~app.core.errors.InvalidModelNameError` for names) with a message that says what was wrong and shows a
valid example. Bad input is echoed at most ``_ECHO_LIMIT`` characters long, escaped with :func:`ascii` so
control characters and non-ASCII look-alikes (a Cyrillic o for a Latin one) are visible.

Repo ids and revisions end up in paths of the models volume (``models--org--name/refs/<revision>``), so the
rules are stricter than the Hub's where a looser rule could reach outside the cache.
"""

from __future__ import annotations

import re

from huggingface_hub.errors import HFValidationError

# huggingface_hub.utils is a lazy facade that mypy cannot see through.
from huggingface_hub.utils import validate_repo_id as hf_validate_repo_id  # type: ignore[attr-defined]

from app.core.errors import InvalidInputError, InvalidModelNameError

_ECHO_LIMIT = 80
_PART_MAX = 96
_REVISION_MAX = 255
_PATTERN_MAX = 200
_PATTERNS_MAX = 50

_NAME_EXAMPLE = "e.g. Qwen/Qwen2.5-0.5B-Instruct or Qwen/Qwen2.5-0.5B-Instruct@main"
_REVISION_EXAMPLE = "e.g. main, v1.0, refs/pr/1 or a 40-character commit id"
_PATTERN_EXAMPLE = "e.g. *.safetensors or onnx/*"

_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)
COMMIT_ID = re.compile(r"[0-9a-f]{40}", re.ASCII)
"""A full commit id as the Hub and the cache layout spell it (``snapshots/<commit>``, ``refs/<branch>``)."""
_REVISION_FORBIDDEN = frozenset("~^:?*[\\")


def show(value: str) -> str:
    """``value`` quoted for an error message: escaped, and cut to ``_ECHO_LIMIT`` characters."""
    if len(value) > _ECHO_LIMIT:
        return f"{value[:_ECHO_LIMIT]!a}… ({len(value)} characters)"
    return ascii(value)


def parse_model_name(name: str) -> tuple[str, str | None]:
    """Split ``org/name`` or ``org/name@revision`` into a validated repo id and revision.

    Only surrounding whitespace is stripped.

    Raises:
        InvalidModelNameError: the name is not ``org/name`` or ``org/name@revision``.
        InvalidInputError: the revision after ``@`` is not a valid branch, tag or commit.
    """
    if not isinstance(name, str):
        raise InvalidModelNameError(f"Model name must be text, {_NAME_EXAMPLE}.")
    repo_id, at, revision = name.strip().partition("@")
    repo_id = validate_repo_id(repo_id)
    if not at:
        return repo_id, None
    if revision == "":
        raise InvalidModelNameError(f"Nothing follows '@' in {show(name)}: give a revision, {_NAME_EXAMPLE}.")
    return repo_id, validate_revision(revision)


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is exactly ``org/name`` in plain ASCII and safe as a cache folder name.

    Raises:
        InvalidModelNameError: it is not.
    """
    if not isinstance(repo_id, str):
        raise InvalidModelNameError(f"Model name must be text, {_NAME_EXAMPLE}.")
    problem = _repo_id_problem(repo_id)
    if problem is None:
        try:
            hf_validate_repo_id(repo_id)
        except HFValidationError:
            problem = "it is not a valid Hub repository id"
    if problem is not None:
        raise InvalidModelNameError(
            f"Model name {show(repo_id)} is not valid: {problem}. "
            f"Model name must look like org/name or org/name@revision, {_NAME_EXAMPLE}."
        )
    return repo_id


def _repo_id_problem(repo_id: str) -> str | None:
    if repo_id == "":
        return "it is empty"
    if not repo_id.isascii():
        return "it contains non-ASCII characters (look-alike letters?)"
    if any(ch.isspace() or not ch.isprintable() for ch in repo_id):
        return "it contains spaces or control characters"
    if repo_id.count("/") != 1:
        return "it needs exactly one '/' between organization and name"
    for part in repo_id.split("/"):
        if problem := _repo_part_problem(part):
            return problem
    return None


def _repo_part_problem(part: str) -> str | None:
    if part == "":
        return "the organization and the name must both be non-empty"
    if len(part) > _PART_MAX:
        return f"each part must be at most {_PART_MAX} characters"
    if ".." in part or "--" in part:
        return "'..' and '--' are not allowed"
    if not _PART_RE.fullmatch(part) or part.endswith((".", "-")):
        return "use letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    return None


def validate_revision(revision: str) -> str:
    """Return ``revision`` if it is a usable branch or tag name, or a 40-character commit id.

    Raises:
        InvalidInputError: it is not.
    """
    if not isinstance(revision, str):
        raise InvalidInputError(f"Revision must be text, {_REVISION_EXAMPLE}.")
    problem = _revision_problem(revision)
    if problem is not None:
        raise InvalidInputError(
            f"Revision {show(revision)} is not valid: {problem}. Use a branch, tag or "
            f"commit, {_REVISION_EXAMPLE}."
        )
    return revision


def _revision_problem(revision: str) -> str | None:
    if revision == "":
        return "it is empty"
    if len(revision) > _REVISION_MAX:
        return f"it is longer than {_REVISION_MAX} characters"
    if COMMIT_ID.fullmatch(revision):
        return None
    if not revision.isascii():
        return "it contains non-ASCII characters"
    if any(ch.isspace() or not ch.isprintable() for ch in revision):
        return "it contains spaces or control characters"
    if forbidden := sorted(_REVISION_FORBIDDEN.intersection(revision)):
        return f"it contains {' '.join(forbidden)}"
    return _revision_shape_problem(revision)


def _revision_shape_problem(revision: str) -> str | None:
    if revision.startswith(("/", "-", ".")):
        return "it cannot start with '/', '-' or '.'"
    if ".." in revision or "//" in revision or "@{" in revision:
        return "'..', '//' and '@{' are not allowed"
    if revision.endswith(("/", ".", ".lock")):
        return "it cannot end with '/', '.' or '.lock'"
    if any(part.startswith(".") for part in revision.split("/")):
        return "no part between '/' may start with '.'"
    return None


def validate_patterns(patterns: list[str] | None) -> list[str] | None:
    """Return cleaned include/exclude glob patterns; ``None`` or an empty list means "no filter" (``None``).

    Each pattern is stripped of surrounding whitespace.

    Raises:
        InvalidInputError: too many patterns, or one is empty, too long, absolute, has control characters
            or a ``..`` segment.
    """
    if patterns is None:
        return None
    if isinstance(patterns, str) or not isinstance(patterns, list):
        raise InvalidInputError(f"File patterns must be a list of globs, {_PATTERN_EXAMPLE}.")
    if len(patterns) > _PATTERNS_MAX:
        raise InvalidInputError(
            f"Too many file patterns ({len(patterns)}); give at most {_PATTERNS_MAX}, {_PATTERN_EXAMPLE}."
        )
    cleaned = [_validate_pattern(pattern) for pattern in patterns]
    return cleaned or None


def _validate_pattern(pattern: str) -> str:
    if not isinstance(pattern, str):
        raise InvalidInputError(f"File patterns must be text, {_PATTERN_EXAMPLE}.")
    cleaned = pattern.strip()
    problem = _pattern_problem(cleaned)
    if problem is not None:
        raise InvalidInputError(
            f"File pattern {show(pattern)} is not valid: {problem}. Use a glob relative "
            f"to the repository, {_PATTERN_EXAMPLE}."
        )
    return cleaned


def _pattern_problem(pattern: str) -> str | None:
    if pattern == "":
        return "it is empty"
    if len(pattern) > _PATTERN_MAX:
        return f"it is longer than {_PATTERN_MAX} characters"
    if any(not ch.isprintable() for ch in pattern):
        return "it contains control characters"
    if pattern.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", pattern):
        return "it is an absolute path"
    if ".." in re.split(r"[/\\]", pattern):
        return "'..' is not allowed"
    return None
