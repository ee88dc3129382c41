"""The worker healthcheck (`python -m swarmq.worker.health`, docker-compose.yml): healthy exactly when a worker on
this host beat within its lease, read from the records the worker's real heartbeat code writes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import pytest
import redis as redis_lib

from swarmq import keys
from swarmq.worker.health import live_workers
from swarmq.worker.housekeeping import WorkerInfo, publish_heartbeat
from tests.conftest import ROOT

HOST = socket.gethostname()


def rec(name: str, host: str, age: float, lease: float = 60.0, now: float = 1000.0) -> dict[str, str]:
    return {"name": name, "host": host, "last_seen": str(now - age), "lease_seconds": str(lease)}


@pytest.mark.parametrize(
    ("records", "name", "expected"),
    [
        ([rec("w@h", "h", 5)], None, ["w@h"]),
        ([rec("w@h", "h", 61)], None, []),  # silent past its lease: lost, as `workers list` shows it
        ([rec("w@h", "h", 30, lease=20)], None, []),  # the record's own lease, not the default
        ([rec("w@other", "other", 1)], None, []),  # another machine's worker says nothing about this one
        ([rec("a@h", "h", 1), rec("b@h", "h", 100)], "b", []),
        ([rec("a@h", "h", 1), rec("b@h", "h", 1)], "b@h", ["b@h"]),
        ([{"name": "w@h", "host": "h"}], None, []),  # no beat recorded yet
        ([{**rec("w@h", "h", 1), "last_seen": "soon"}], None, []),
    ],
)
def test_live_workers(records: list[dict[str, str]], name: str | None, expected: list[str]) -> None:
    assert live_workers(records, host="h", name=name, now=1000.0) == expected


class _IdleRunner:
    """What `publish_heartbeat` reads from a JobRunner, for a worker between jobs."""

    jobs_done = 0

    def running(self) -> dict[int, float]:
        return {}

    def busy(self) -> int:
        return 0

    def mean_tokens_per_second(self) -> float:
        return 0.0


def health(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMQ_")}
    # As in the compose file: both URLs (Postgres is never touched) and no embedded fallback.
    env |= {
        "SWARMQ_REDIS_URL": redis_url,
        "SWARMQ_DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
        "SWARMQ_EMBEDDED": "0",
    }
    cmd = [sys.executable, "-m", "swarmq.worker.health", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.services
def test_healthcheck_reads_the_real_heartbeat(redis_url: str) -> None:
    r = redis_lib.Redis.from_url(redis_url)
    r.flushdb()
    try:
        assert health(redis_url).returncode == 1  # nothing has beaten yet
        info = WorkerInfo(f"swarmq-gpu0@{HOST}", HOST, None, "m", "m.gguf")
        runner: Any = _IdleRunner()
        publish_heartbeat(r, info, runner, lease_seconds=60, keep_seconds=3600)
        ok = health(redis_url)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.strip() == f"healthy: swarmq-gpu0@{HOST} beat within its lease"
        assert health(redis_url, "swarmq-gpu0").returncode == 0
        assert health(redis_url, "swarmq-gpu1").returncode == 1
        r.hset(keys.worker_key(info.name), "last_seen", "0")  # silent since 1970
        stale = health(redis_url)
        assert stale.returncode == 1 and stale.stdout.startswith("unhealthy: no worker on ")
    finally:
        r.flushdb()


def test_healthcheck_without_redis_exits_3() -> None:
    r = health("redis://127.0.0.1:1/0")
    assert r.returncode == 3
    assert r.stderr.strip().startswith("swarmq health: cannot reach Redis at redis://127.0.0.1:1/0")
