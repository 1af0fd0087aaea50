"""app/core/validation.py: model names, revisions and patterns, accepted or refused with a usable message."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.errors import InvalidInputError, InvalidModelNameError
from app.core.validation import parse_model_name, validate_patterns, validate_repo_id, validate_revision

NASTY = [
    "",
    " ",
    "..",
    "/etc/passwd",
    "org/../../etc",
    "a/b/c",
    "org/name\x00",
    "x" * 10_000,
    "\u043erg/name",  # a Cyrillic o
    "$(rm -rf /)",
    "../*",
    "/abs/*",
    "org/",
    "/name",
    "org//name",
    "org/na me",
    "org/na\tme",
    "org\\name",
    "org/-name",
    "org/name.",
    "org/name--x",
    "org/name.git",
    "org/" + "a" * 97,
    "org/name@",
    "org/name@..",
    "org/name@-x",
    "org/name@/main",
    "org/name@ma in",
    "org/name@a~1",
    "org/name@" + "b" * 256,
    "org/name;rm -rf /",
    "org/name%2F..",
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", ("Qwen/Qwen2.5-0.5B-Instruct", None)),
        ("  org/name \n", ("org/name", None)),
        ("a/b", ("a/b", None)),
        ("org_x/name.v2", ("org_x/name.v2", None)),
        ("org/name@main", ("org/name", "main")),
        ("org/name@v1.0", ("org/name", "v1.0")),
        ("org/name@refs/pr/1", ("org/name", "refs/pr/1")),
        ("org/name@" + "0123456789" * 4, ("org/name", "0123456789" * 4)),
        ("org/" + "a" * 96, ("org/" + "a" * 96, None)),
    ],
)
def test_parse_model_name_accepts(name: str, expected: tuple[str, str | None]) -> None:
    assert parse_model_name(name) == expected


@pytest.mark.parametrize("name", NASTY)
def test_parse_model_name_rejects(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_model_name(name)
    message = str(caught.value)
    assert "e.g." in message
    assert len(message) < 400
    assert "x" * 81 not in message and "b" * 81 not in message
    assert "\x00" not in message and "\t" not in message


def test_model_name_messages() -> None:
    with pytest.raises(
        InvalidModelNameError, match=r"must look like org/name .*e\.g\. Qwen/Qwen2\.5-0\.5B-Instruct"
    ):
        parse_model_name("a/b/c")
    with pytest.raises(InvalidModelNameError, match=r"\\u043erg/name.*non-ASCII"):
        parse_model_name("\u043erg/name")
    with pytest.raises(InvalidInputError, match="Revision") as caught:
        parse_model_name("org/name@a:b")
    assert not isinstance(caught.value, InvalidModelNameError)
    assert validate_repo_id("org/name") == "org/name"


@pytest.mark.parametrize(
    "revision", ["main", "v1.0", "refs/pr/1", "refs/convert/parquet", "release-2024_01", "a" * 40, "x" * 255]
)
def test_validate_revision_accepts(revision: str) -> None:
    assert validate_revision(revision) == revision


@pytest.mark.parametrize(
    "revision",
    [
        "",
        " ",
        "..",
        "a..b",
        "/main",
        "-x",
        ".hidden",
        "ma in",
        "x\x00",
        "a\nb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "x" * 256,
        "main.lock",
        "refs/heads/",
        "a@{1}",
        "refs//x",
        "refs/.x",
        "méin",
    ],
)
def test_validate_revision_rejects(revision: str) -> None:
    with pytest.raises(InvalidInputError, match=r"e\.g\. main"):
        validate_revision(revision)


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (None, None),
        ([], None),
        (["*.safetensors", " config.json "], ["*.safetensors", "config.json"]),
        (["onnx/*", "**/*.json", "model-0000?-of-*.bin"], ["onnx/*", "**/*.json", "model-0000?-of-*.bin"]),
        (["*"] * 50, ["*"] * 50),
    ],
)
def test_validate_patterns_accepts(patterns: list[str] | None, expected: list[str] | None) -> None:
    assert validate_patterns(patterns) == expected


@pytest.mark.parametrize(
    "patterns",
    [
        [""],
        [" "],
        ["../*"],
        ["/abs/*"],
        ["a/../b"],
        ["a/.."],
        ["\\abs"],
        ["C:/x"],
        ["x\x00"],
        ["a\tb"],
        ["a" * 201],
        ["*"] * 51,
        "*.bin",
        [3],
    ],
)
def test_validate_patterns_rejects(patterns: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"e\.g\. \*\.safetensors") as caught:
        validate_patterns(patterns)
    assert "a" * 81 not in str(caught.value)
