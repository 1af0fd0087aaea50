"""How a command reaches Redis: a refused password against a real redis-server with ``requirepass``, and the
path of the embedded server's socket."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.connection import check, connect
from app.core.embedded import MAX_SOCKET_PATH, EmbeddedRedis, existing_socket, socket_path
from app.core.errors import ConfigError, StateUnavailableError
from app.core.settings import Settings
from tests.redis_server import RedisServer, free_port
from tests.support.locked_redis import PASSWORD


def check_url(url: str, tmp_path: Path) -> str:
    return check(connect(Settings(redis_url=url, data_dir=tmp_path, redis_retry_s=0)))


def test_the_right_password_is_accepted(locked_redis: RedisServer, tmp_path: Path) -> None:
    assert check_url(locked_redis.url, tmp_path)


@pytest.mark.parametrize("credentials", [":wrong-pw@", "bob:wrong-pw@", f"bob:{PASSWORD}@"])
def test_a_refused_password_says_so_and_never_shows_it(
    locked_redis: RedisServer, tmp_path: Path, credentials: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_url(f"redis://{credentials}127.0.0.1:{locked_redis.port}/0", tmp_path)
    message = str(caught.value)
    assert "refused the user or password in MODELDEPOT_REDIS_URL" in message, message
    assert f"127.0.0.1:{locked_redis.port}" in message and "redis://USER:PASSWORD@" in message, message
    assert "wrong-pw" not in message and PASSWORD not in message and "Cannot reach" not in message, message


def test_a_missing_password_says_one_is_required(locked_redis: RedisServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        check_url(f"redis://127.0.0.1:{locked_redis.port}/0", tmp_path)
    message = str(caught.value)
    assert "requires a password" in message and "redis://:PASSWORD@" in message, message
    assert "Cannot reach" not in message, message


def test_an_unreachable_redis_is_still_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(StateUnavailableError, match="Cannot reach Redis") as caught:
        check_url(f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0", tmp_path)
    assert PASSWORD not in str(caught.value)


def deep(tmp_path: Path, name: str = "data") -> Path:
    return tmp_path / ("deep-" * 16) / name


def test_a_short_data_dir_keeps_its_socket(tmp_path: Path) -> None:
    assert socket_path(tmp_path / "data") == (tmp_path / "data" / "redis" / "redis.sock").resolve()


def test_a_deep_data_dir_gets_the_same_short_socket_path_every_time(tmp_path: Path) -> None:
    path = socket_path(deep(tmp_path))
    assert len(os.fsencode(path)) <= MAX_SOCKET_PATH
    assert path == socket_path(deep(tmp_path)) == socket_path(deep(tmp_path) / "x" / "..")
    assert path != socket_path(deep(tmp_path, "other"))


def test_the_embedded_server_of_a_deep_data_dir_is_found_and_cleans_up(tmp_path: Path) -> None:
    with EmbeddedRedis(deep(tmp_path)) as server:
        assert server.socket == existing_socket(deep(tmp_path)) == socket_path(deep(tmp_path))
        assert check(connect(Settings(data_dir=tmp_path), url=server.url))
    assert existing_socket(deep(tmp_path)) is None
    assert not server.socket.parent.exists()


def test_a_socket_directory_that_is_a_link_is_refused(tmp_path: Path) -> None:
    directory = socket_path(deep(tmp_path)).parent
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    directory.symlink_to(tmp_path / "elsewhere")
    try:
        with pytest.raises(ConfigError, match="not a directory of this user"):
            EmbeddedRedis(deep(tmp_path)).start()
        (tmp_path / "elsewhere" / "redis.sock").touch()
        assert existing_socket(deep(tmp_path)) is None
    finally:
        directory.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user takes root")
def test_a_socket_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    directory = socket_path(deep(tmp_path)).parent
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    try:
        with pytest.raises(ConfigError, match="not a directory of this user"):
            EmbeddedRedis(deep(tmp_path)).start()
        assert existing_socket(deep(tmp_path)) is None
    finally:
        directory.rmdir()
