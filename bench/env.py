"""Where a benchmark runs: the services it talks to, its own fresh database, and the machine it reports.

Services, first match wins:
- Postgres: SWARMQ_BENCH_PG_URL, SWARMQ_DATABASE_URL, 127.0.0.1:5432 when it answers, else swarmq's embedded server.
- Redis: SWARMQ_BENCH_REDIS_URL, SWARMQ_REDIS_URL, 127.0.0.1:6379 when it answers, else an embedded redis-server
  of the bench's own (under SWARMQ_HOME/bench, db 0); switched to db SWARMQ_BENCH_REDIS_DB (default 14), which is
  flushed before and after each figure.
SWARMQ_BENCH_EMBEDDED=1 skips the first three and uses the embedded servers.
Every figure gets its own database (``swarmq_bench_<random>``, migrated with `swarmq db upgrade`, dropped after).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import redis as redis_lib

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_DB = 14


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _plain_pg(url: str) -> str:
    """psycopg wants ``postgresql://``; swarmq's settings may say ``postgresql+psycopg://``."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _swarmq_home() -> Path:
    from swarmq.settings import get_settings

    return get_settings().home


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database ``name`` (TCP or the embedded server's unix-socket URL)."""
    parts = urlsplit(_plain_pg(url))  # built by hand: urlunsplit drops the "//" of an empty host (sockets)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


def with_redis_db(url: str, db: int) -> str:
    """``url`` switched to Redis database ``db`` (``redis://host:port/N`` or ``unix://path?db=N``)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


@dataclass(frozen=True)
class Endpoints:
    pg_url: str
    """Any database on the server; the bench only issues CREATE/DROP DATABASE through it."""
    redis_url: str
    """Already switched to the bench's Redis db."""
    source: str


def _embedded_only() -> bool:
    return os.environ.get("SWARMQ_BENCH_EMBEDDED", "") not in ("", "0")


def _pg_url() -> tuple[str, str]:
    url = os.environ.get("SWARMQ_BENCH_PG_URL") or os.environ.get("SWARMQ_DATABASE_URL")
    if url and not _embedded_only():
        return url, "env"
    if _port_open(5432) and not _embedded_only():
        return "postgresql://postgres@127.0.0.1:5432/postgres", "127.0.0.1:5432"
    from swarmq.store.embedded import postgres_url

    return with_database(postgres_url(_swarmq_home()), "postgres"), "embedded"


def _redis_url() -> tuple[str, str]:
    url = os.environ.get("SWARMQ_BENCH_REDIS_URL") or os.environ.get("SWARMQ_REDIS_URL")
    if url and not _embedded_only():
        return url, "env"
    if _port_open(6379) and not _embedded_only():
        return "redis://127.0.0.1:6379/0", "127.0.0.1:6379"
    from swarmq.store.embedded import redis_url

    # A redis-server of the bench's own: over a unix socket kombu ignores ``?db=N`` and uses db 0 (swarmq's
    # `broker.kombu_url` passes it as ``db``, kombu reads ``virtual_host``), so only db 0 keeps the Celery
    # queues and the swarm state together, and db 0 of the user's embedded server is theirs.
    return redis_url(_swarmq_home() / "bench"), "embedded (bench's own redis-server)"


def discover() -> Endpoints:
    pg, pg_src = _pg_url()
    rd, rd_src = _redis_url()
    db = int(os.environ.get("SWARMQ_BENCH_REDIS_DB", DEFAULT_REDIS_DB))
    if rd.startswith("unix://") and rd_src.startswith("embedded"):
        db = 0
    return Endpoints(_plain_pg(pg), with_redis_db(rd, db), f"postgres={pg_src} redis={rd_src} db={db}")


@dataclass
class BenchDB:
    """One figure's fresh database and flushed Redis db, with clients and a subprocess environment."""

    endpoints: Endpoints
    name: str
    url: str
    """psycopg URL of the fresh database."""
    env: dict[str, str] = field(default_factory=dict)
    _services: Any = None

    @property
    def redis_url(self) -> str:
        return self.endpoints.redis_url

    @property
    def services(self) -> Any:
        """swarmq's own clients (engine, sessions, redis), connected once."""
        if self._services is None:
            from swarmq.settings import Settings
            from swarmq.store.services import connect

            self._services = connect(Settings(database_url=self.url, redis_url=self.redis_url))
        return self._services

    def redis(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.redis_url)

    def connect(self, **kw: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, **kw)

    def reset(self) -> None:
        """Empty tables and the Redis db: every repeat starts from the same state."""
        with self.connect(autocommit=True) as conn:
            conn.execute("TRUNCATE experiments, issues, jobs, outcomes RESTART IDENTITY CASCADE")
        self.redis().flushdb()

    def swarmq(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run the real CLI as a user would; raises with its stderr on failure."""
        r = subprocess.run(
            [sys.executable, "-m", "swarmq", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise RuntimeError(f"swarmq {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
        return r


@contextmanager
def fresh_database(endpoints: Endpoints) -> Iterator[BenchDB]:
    name = f"swarmq_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(endpoints.pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(endpoints.pg_url, name)
    env = {**os.environ, "SWARMQ_DATABASE_URL": url, "SWARMQ_REDIS_URL": endpoints.redis_url}
    bench = BenchDB(endpoints, name, url, env)
    try:
        bench.swarmq("db", "upgrade")
        bench.redis().flushdb()
        yield bench
    finally:
        if bench._services is not None:
            bench._services.engine.dispose()
            bench._services.redis.close()
        bench.redis().flushdb()
        with psycopg.connect(endpoints.pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- what the results are recorded with ---------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
    }
    with suppress(ValueError, OSError):
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    from swarmq.worker.gpus import list_gpus

    info["gpus"] = [
        {"index": g.index, "name": g.name, "memory_gib": round(g.memory_total / 2**30, 1)}
        for g in list_gpus()
    ]
    return info


def _pkg(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(endpoints: Endpoints) -> dict[str, Any]:
    out: dict[str, Any] = {
        p: _pkg(p)
        for p in ("swarmq", "llama_cpp_python", "celery", "kombu", "redis", "psycopg", "sqlalchemy")
    }
    try:
        import llama_cpp

        out["llama_cpp_gpu_offload"] = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # a broken or CPU-less build: the version above says enough
        out["llama_cpp_gpu_offload"] = None
    try:
        out["redis_server"] = redis_lib.Redis.from_url(endpoints.redis_url).info("server")["redis_version"]
    except redis_lib.RedisError as exc:
        out["redis_server"] = f"unavailable: {exc}"
    try:
        with psycopg.connect(endpoints.pg_url) as conn:
            row = conn.execute("SELECT version()").fetchone()
            out["postgres"] = row[0] if row else None
    except psycopg.Error as exc:
        out["postgres"] = f"unavailable: {exc}"
    return out
