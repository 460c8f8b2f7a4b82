"""Configuration from the environment (prefix FIELDBOOK_); see the table in README.md."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789"
# What a browser sends as Origin, `scheme://host[:port]`: a path, a slash or `*` would never match one.
Origin = Annotated[str, StringConstraints(pattern=r"^https?://[^/\s*]+$")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIELDBOOK_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./fieldbook.db"
    # Connections each API process keeps open to PostgreSQL, and how many more it may open under a burst. Extra
    # connections are closed when returned, so concurrency above the pool pays a new connection (and new plans for
    # its prepared statements) per request: size the pool for the requests a process serves at once.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    secret_key: str = DEV_SECRET_KEY
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    invite_days: int = Field(default=7, ge=1, le=90)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Spreadsheet uploads (POST /imports) may be larger than any other request.
    max_upload_bytes: int = Field(default=25 * 1_048_576, ge=1024)
    # Failed-login throttling: at most N failures per window, per account and per client address.
    login_window_seconds: int = Field(default=900, ge=1)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    # Argon2id cost (argon2-cffi's defaults, RFC 9106's low-memory profile); tests lower it for speed.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=64)
    # What an app's pull cursor stays valid for: an app offline longer pulls its working set afresh.
    sync_retention_days: int = Field(default=30, ge=1, le=365)
    # Rate limits per caller, a token bucket (docs/rate-limits.md): sustained requests a minute, and how many may come
    # at once. A phone's first sync of a large working set is ~100 pull pages (within the burst), then it is idle;
    # a user's screens make a few requests a second at most. Keys get twice as much: an integration paging through
    # changes or writing records one by one. 0 a minute turns the limit off for that kind of caller.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_burst: int = Field(default=120, ge=1)
    rate_limit_key_per_minute: int = Field(default=1200, ge=0)
    rate_limit_key_burst: int = Field(default=240, ge=1)
    # Webhooks (docs/webhooks.md). `fieldbook serve` delivers them from its own process unless this is off (then
    # run `fieldbook worker` processes).
    webhook_worker: bool = True
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    # Retries: base * 2^(attempt - 1) seconds, capped, with jitter, until the horizon.
    webhook_retry_base_seconds: float = Field(default=30, gt=0)
    webhook_retry_cap_seconds: float = Field(default=6 * 3600, gt=0)
    webhook_retry_horizon_seconds: float = Field(default=3 * 24 * 3600, gt=0)
    # An endpoint that has failed every delivery for this long is disabled, and the admins told.
    webhook_disable_after_seconds: float = Field(default=3 * 24 * 3600, gt=0)
    # A worker's claim on the messages it is sending; a worker killed mid-delivery leaves them to others after it.
    webhook_lease_seconds: float = Field(default=60, gt=0)
    webhook_poll_seconds: float = Field(default=2, gt=0)
    # Delivered and failed messages, with their attempts, are kept this long in the delivery log.
    webhook_retention_days: int = Field(default=30, ge=1, le=365)
    # Tests only: lets webhooks reach 127.0.0.1 (over http). Refused in production.
    webhook_allow_loopback: bool = False
    # Browser security: the HSTS max-age, sent only when above 0, for a deployment served over HTTPS
    # only; and the other sites (`https://crm.example.com`, comma-separated) whose pages may call the API. Empty:
    # only the app's own origin, which needs no CORS.
    hsts_seconds: int = Field(default=0, ge=0)
    cors_origins: Annotated[list[Origin], NoDecode] = []
    log_level: str = "info"
    # The built app (`npm run build` in pwa/), served at `/`; without it only the API is served.
    pwa_dir: Path = Path(__file__).resolve().parent.parent / "pwa" / "dist"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_unsafe_configuration(self) -> "Settings":
        if self.env != "development" and (self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32):
            raise ValueError(
                "FIELDBOOK_SECRET_KEY must be set to a random string of at least 32 characters "
                "outside development (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        if self.env == "production" and self.webhook_allow_loopback:
            raise ValueError("FIELDBOOK_WEBHOOK_ALLOW_LOOPBACK is for tests: production never sends webhooks inwards")
        if self.webhook_lease_seconds < 2 * self.webhook_timeout_seconds:
            # A round sends at once what it claimed: one timeout, then settling, must fit in the lease.
            raise ValueError("FIELDBOOK_WEBHOOK_LEASE_SECONDS must be at least twice FIELDBOOK_WEBHOOK_TIMEOUT_SECONDS")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
