"""The Sentinel URL form, its errors and its redaction, and the retry policy every connection gets (no server)."""

from __future__ import annotations

import time

import pytest
import redis

from app.core.connection import PatientRetry, connect, connection_url, retryable
from app.core.errors import ConfigError
from app.core.redis_url import SentinelTarget, parse_sentinel_url, redact
from app.core.settings import Settings, get_settings, reset_settings


def test_a_sentinel_url_names_the_sentinels_the_service_the_db_and_the_login() -> None:
    target = parse_sentinel_url("rediss+sentinel://alice:p%40ss@s1:26380,s2,[::1]:26381/depot/3")
    assert target == SentinelTarget(sentinels=(("s1", 26380), ("s2", 26379), ("::1", 26381)), service="depot",
                                    db=3, username="alice", password="p@ss", ssl=True)
    assert parse_sentinel_url("redis+sentinel://:pw@h/depot") == SentinelTarget((("h", 26379),), "depot",
                                                                               password="pw")


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h1:26379", "names the service"),
    ("redis+sentinel://h1:26379/depot/x", "must be a number"),
    ("redis+sentinel://h1:26379,/depot", "host:port"),
    ("redis+sentinel://h1:port/depot", "'h1:port' is not a host:port"),
    ("redis+sentinel://h1/depot?ssl=1", "no query"),
])
def test_a_bad_sentinel_url_says_what_is_wrong_and_the_form(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        parse_sentinel_url(url)
    assert "redis+sentinel://[user:password@]host1:26379,host2:26379/<service>/<db>" in str(caught.value)


def test_a_bad_url_stops_start_up_without_repeating_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPOT_REDIS_URL", "redis+sentinel://:hunter2@h1:26379")
    reset_settings()
    try:
        with pytest.raises(ConfigError) as caught:
            get_settings()
    finally:
        reset_settings()
    message = str(caught.value)
    assert "MODELDEPOT_REDIS_URL=" in message and "names the service" in message, message
    assert "hunter2" not in message and ":***@h1:26379" in message, message


@pytest.mark.parametrize(("url", "shown"), [
    ("redis+sentinel://u:secret@h1:1,h2:2/depot/0", "redis+sentinel://u:***@h1:1,h2:2/depot/0"),
    ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
    ("unix:///run/redis.sock?password=secret&db=1", "unix:///run/redis.sock?password=***&db=1"),
    ("redis://host:6379/0", "redis://host:6379/0"),
])
def test_redact_hides_every_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_sentinel_client_is_named_by_its_service_without_a_password(tmp_path) -> None:
    settings = Settings(redis_url="redis+sentinel://u:secret@127.0.0.1:1,127.0.0.1:2/depot/4", data_dir=tmp_path)
    assert connection_url(connect(settings)) == "redis+sentinel://127.0.0.1:1,127.0.0.1:2/depot/4"


@pytest.mark.parametrize(("error", "again"), [
    (redis.ConnectionError("reset"), True),
    (redis.TimeoutError("slow"), True),
    (redis.ReadOnlyError("You can't write against a read only replica."), True),
    (redis.ResponseError("NOREPLICAS Not enough good replicas to write."), True),
    (redis.ResponseError("LOADING Redis is loading the dataset in memory"), True),
    (redis.ResponseError("Command # 1 (EVALSHA 1f46 6 modeldepot:version) of pipeline caused error: Error running "
                         "script (call to f_1f46): @user_script:5: @user_script: 5: -NOREPLICAS Not enough good "
                         "replicas to write."), True),
    (redis.ResponseError("Command # 1 (HSET rq:job:md-dl-de49 status JobStatus.CANCELED) of pipeline caused error: "
                         "NOREPLICAS Not enough good replicas to write."), True),
    (redis.ResponseError("ERR value is not an integer (READONLY_FLAG)"), False),
    (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    (redis.AuthenticationError("invalid password"), False),  # a ConnectionError to redis-py, but no blip
])
def test_what_a_later_attempt_can_get_past(error: Exception, again: bool) -> None:
    assert retryable(error) is again


def test_the_retry_is_bounded_by_time_not_by_attempts() -> None:
    attempts = []

    def refused() -> None:
        attempts.append(time.monotonic())
        raise redis.ConnectionError("refused")

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        PatientRetry(1.0).call_with_retry(refused, lambda error: None)
    took = time.monotonic() - started
    assert 1.0 <= took <= 1.0 + 0.1 and len(attempts) > 3, (took, len(attempts))


def test_an_error_no_attempt_can_get_past_is_raised_at_once() -> None:
    calls = []

    def wrong_type() -> None:
        calls.append(1)
        raise redis.ResponseError("WRONGTYPE no")

    with pytest.raises(redis.ResponseError):
        PatientRetry(5.0).call_with_retry(wrong_type, lambda error: None)
    assert calls == [1]


def test_a_role_reply_that_outlasted_the_retries_is_reported_as_unreachable() -> None:
    from app.core.errors import StateUnavailableError
    from app.core.store import redis_errors

    with pytest.raises(StateUnavailableError, match="unreachable; nothing was changed"), redis_errors():
        raise redis.ResponseError("NOREPLICAS Not enough good replicas to write.")
    with pytest.raises(redis.ResponseError), redis_errors():
        raise redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
