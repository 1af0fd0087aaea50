"""One settings object, read at call time.

Every module calls :func:`get_settings` when it runs instead of copying values at import, so tests change
the environment (or call :func:`reset_settings`) in one place.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core import redis_url
from app.core.errors import ConfigError
from app.core.units import parse_size


class Settings(BaseSettings):
    """Model Depot configuration, from ``MODELDEPOT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="MODELDEPOT_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MODELDEPOT_REDIS_URL", "REDIS_URL"),
        description="Redis to share state through. Unset: start an embedded redis-server under data_dir.",
    )
    redis_sentinel_password: SecretStr | None = Field(
        default=None, description="Password of the sentinels themselves (the URL's password is the data nodes')."
    )
    redis_retry_s: float = Field(
        default=30.0, ge=0, le=3600,
        description="How long a Redis command is retried through a failover or restart before it fails (s).",
    )
    redis_wait_ms: int = Field(
        default=1000, ge=0, le=60_000,
        description="How long a significant write waits for a replica to confirm it (WAIT 1 <ms>); 0: never.",
    )
    data_dir: Path = Field(default=Path("./modeldepot-data"), description="Holds models/ and the snapshot.")
    models_dir: Path | None = Field(default=None, description="HF cache layout; default data_dir/models.")
    state_file: Path | None = Field(default=None, description="JSON snapshot; default data_dir/...json.")
    key_prefix: str = Field(default="modeldepot", description="Prefix of every Redis key and channel.")
    log_size: int = Field(default=1000, ge=10, le=1_000_000, description="Event log lines kept.")
    stream_size: int = Field(default=10_000, ge=100, description="Approximate length of the event stream.")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Download attempts before 'failed'.")
    heartbeat_interval: float = Field(default=2.0, gt=0, description="Seconds between job heartbeats.")
    heartbeat_ttl: float = Field(default=10.0, gt=0, description="A job silent this long is dead.")
    progress_interval: float = Field(default=0.25, gt=0, description="Min seconds between progress writes.")
    job_timeout: int = Field(default=6 * 3600, gt=0, description="RQ timeout of one download job (s).")
    auth_file: Path | None = Field(default=None, description="Users file (hashed passwords and roles).")
    auth_header: str | None = Field(default=None, description="Trusted SSO header carrying the user name.")
    auth_header_role: str = Field(default="viewer", description="Role of users from the trusted header.")
    auth_admins: str = Field(default="", description="Comma-separated header users who are admins.")
    session_ttl: int = Field(default=7 * 24 * 3600, gt=0, description="Login session lifetime (s).")
    login_max_failures: int = Field(default=5, ge=1, description="Wrong passwords before a user's sign-in pauses.")
    login_pause_s: int = Field(default=300, gt=0, description="How long sign-in pauses after the last wrong one (s).")

    url: str | None = Field(
        default=None, description="A UI worker's address (http://host:7860): the CLI then goes through its HTTP API."
    )
    token: SecretStr | None = Field(default=None, description="The API token the CLI sends with MODELDEPOT_URL.")
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed to call /api/v1 from a browser; empty: none."
    )

    stall_s: float = Field(default=30.0, gt=0, description="A transfer with no new byte this long is stalled (s).")
    retry_window_s: float = Field(
        default=900.0, gt=0, description="A download fails after this long without any new byte despite retries (s)."
    )
    max_bandwidth: int | None = Field(
        default=None, description="Most bytes per second one worker downloads (50MB, 400MiB, bytes); unset: no cap."
    )
    max_files: int = Field(default=8, ge=1, le=64, description="Files of one download transferred at a time.")
    transfer: Literal["auto", "http", "xet"] = Field(
        default="auto", description="auto and http: resumable HTTP ranges; xet: hf_xet for Xet-backed files."
    )
    partial_ttl_s: float = Field(
        default=7 * 24 * 3600.0, ge=0, description="Partial files no record owns are swept after this long (s)."
    )

    update_check_s: float = Field(
        default=6 * 3600.0, ge=0, description="How often each model's branch is checked for a new commit (s); 0: never."
    )
    usage_scan_s: float = Field(
        default=600.0, gt=0, description="How often the workers read the models' last access times (s)."
    )
    models_quota: int | None = Field(
        default=None, description="Most bytes the models may take (500GB, 2TiB, bytes); unset: no quota."
    )
    disk_high_watermark: float | None = Field(
        default=None, gt=0, le=100, description="Percent of the volume used above which downloads refuse or evict."
    )
    disk_low_watermark: float | None = Field(
        default=None, gt=0, le=100, description="Percent of the volume used that eviction brings usage back under."
    )
    evict: bool = Field(
        default=False, description="Remove the least recently used unpinned models to make room (else refuse)."
    )
    evict_min_idle_s: float = Field(
        default=3600.0, ge=0, description="A model used more recently than this is never evicted (s)."
    )

    @field_validator("max_bandwidth", mode="before")
    @classmethod
    def _parse_bandwidth(cls, value: object) -> int | None:
        if value in (None, ""):
            return None
        rate = parse_size(value)  # type: ignore[arg-type]
        if rate <= 0:
            raise ValueError("must be a positive size per second, e.g. 50MB or 400MiB (unset it for no cap)")
        return rate

    @field_validator("models_quota", mode="before")
    @classmethod
    def _parse_quota(cls, value: object) -> int | None:
        if value in (None, ""):
            return None
        if isinstance(value, str) and value.strip().startswith("-"):
            raise ValueError("must not be negative; give a size such as 500GB or 2TiB (unset it for no quota)")
        return parse_size(value)  # type: ignore[arg-type]

    @field_validator("disk_high_watermark", "disk_low_watermark", mode="before")
    @classmethod
    def _parse_percent(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().removesuffix("%").strip()
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_watermarks(self) -> Settings:
        high, low = self.disk_high_watermark, self.disk_low_watermark
        if low is not None and high is None:
            raise ValueError("MODELDEPOT_DISK_LOW_WATERMARK is set without MODELDEPOT_DISK_HIGH_WATERMARK; set "
                             "both, e.g. 90 and 80 (percent of the volume used)")
        if low is not None and high is not None and low >= high:
            raise ValueError(f"MODELDEPOT_DISK_LOW_WATERMARK ({low:g}) must be below MODELDEPOT_DISK_HIGH_WATERMARK "
                             f"({high:g}), e.g. 80 and 90")
        return self

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be the address of a UI worker, e.g. http://modeldepot.internal:7860")
        return value.rstrip("/")

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(redis_url.SCHEMES):
            raise ValueError("must start with redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel://")
        if redis_url.is_sentinel(value):
            redis_url.parse_sentinel_url(value)
        return value

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not value or any(ch.isspace() or ch in "*?[]" for ch in value):
            raise ValueError("must be non-empty, without spaces or glob characters")
        return value

    @property
    def resolved_models_dir(self) -> Path:
        return (self.models_dir or self.data_dir / "models").resolve()

    @property
    def resolved_state_file(self) -> Path:
        return (self.state_file or self.data_dir / "controller_state.json").resolve()

    @property
    def low_watermark(self) -> float | None:
        """The percent eviction brings usage back under: the low watermark, or the high one when only it is set."""
        return self.disk_low_watermark if self.disk_low_watermark is not None else self.disk_high_watermark

    @property
    def embedded(self) -> bool:
        """True when no Redis URL is set and the app runs its own redis-server."""
        return self.redis_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings.

    Raises:
        ConfigError: an environment variable holds a value that cannot be used.
    """
    try:
        return Settings()
    except ValidationError as e:
        raise ConfigError(f"{_describe(e)} Fix the environment and start again.") from e
    except ValueError as e:
        raise ConfigError(f"Invalid MODELDEPOT_* setting: {e}. Fix the environment and start again.") from e


def _describe(error: ValidationError) -> str:
    """One sentence per bad variable: its name, the value given, what is wrong and what it means."""
    parts = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a check across several variables names them itself
            parts.append(f"{message}.")
            continue
        field = str(item["loc"][0])
        info = Settings.model_fields.get(field)
        variable = f"MODELDEPOT_{field.upper()}"
        value = redis_url.redact(str(item.get("input")))[:80]  # a URL's password is never repeated
        hint = f" ({info.description.rstrip('.')})" if info is not None and info.description else ""
        parts.append(f"{variable}={value!r} is invalid: {message}{hint}.")
    return " ".join(parts)


def reset_settings() -> None:
    """Forget the cached settings so the next :func:`get_settings` reads the environment again."""
    get_settings.cache_clear()
