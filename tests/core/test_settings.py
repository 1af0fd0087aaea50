"""Settings that cannot be used stop start-up with the variable's name, the value and what to give instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.errors import ConfigError
from app.core.settings import get_settings, reset_settings


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("MODELDEPOT_MODELS_QUOTA", "MODELDEPOT_DISK_HIGH_WATERMARK", "MODELDEPOT_DISK_LOW_WATERMARK",
                 "MODELDEPOT_EVICT", "MODELDEPOT_MAX_BANDWIDTH", "MODELDEPOT_UPDATE_CHECK_S"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.mark.parametrize(("env", "message"), [
    ({"MODELDEPOT_MODELS_QUOTA": "lots"}, r"MODELDEPOT_MODELS_QUOTA='lots' is invalid: 'lots' is not a size; use "
                                          r"plain bytes or a unit, e\.g\. 50MB"),
    ({"MODELDEPOT_MODELS_QUOTA": "-5GB"}, r"MODELDEPOT_MODELS_QUOTA='-5GB' is invalid: must not be negative"),
    ({"MODELDEPOT_DISK_HIGH_WATERMARK": "80", "MODELDEPOT_DISK_LOW_WATERMARK": "90"},
     r"MODELDEPOT_DISK_LOW_WATERMARK \(90\) must be below MODELDEPOT_DISK_HIGH_WATERMARK \(80\)"),
    ({"MODELDEPOT_DISK_HIGH_WATERMARK": "85", "MODELDEPOT_DISK_LOW_WATERMARK": "85"}, r"must be below"),
    ({"MODELDEPOT_DISK_LOW_WATERMARK": "80"}, r"set without MODELDEPOT_DISK_HIGH_WATERMARK; set both"),
    ({"MODELDEPOT_DISK_HIGH_WATERMARK": "120"}, r"MODELDEPOT_DISK_HIGH_WATERMARK='120' is invalid: .*less than or "
                                                r"equal to 100"),
    ({"MODELDEPOT_DISK_HIGH_WATERMARK": "ninety"}, r"MODELDEPOT_DISK_HIGH_WATERMARK='ninety' is invalid"),
    ({"MODELDEPOT_EVICT": "sometimes"}, r"MODELDEPOT_EVICT='sometimes' is invalid"),
    ({"MODELDEPOT_UPDATE_CHECK_S": "-1"}, r"MODELDEPOT_UPDATE_CHECK_S='-1' is invalid"),
])
def test_bad_room_settings_stop_start_up(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                         message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as caught:
        get_settings()
    assert str(caught.value).endswith("Fix the environment and start again.")


def test_room_settings_read_as_people_write_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPOT_MODELS_QUOTA", "500GB")
    monkeypatch.setenv("MODELDEPOT_DISK_HIGH_WATERMARK", "90%")
    settings = get_settings()
    assert settings.models_quota == 500 * 1000**3 and settings.disk_high_watermark == 90.0
    assert settings.low_watermark == 90.0  # no low mark: eviction stops at the high one
    assert not settings.evict and settings.update_check_s == 6 * 3600
