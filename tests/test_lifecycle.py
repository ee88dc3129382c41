"""An experiment's lifecycle on the real path: `swarmq experiments / pause / resume / cancel / retry / delete`
against real Postgres, Redis and worker subprocesses (stand-in generators), with kills where it matters."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from swarmq import keys
from tests.conftest import ROOT, swarmq
from tests.helpers import write_config
from tests.test_reliability import CONDS, FAST, assert_exactly_once, db, scalar, start_worker, wait_for

pytestmark = [pytest.mark.services, pytest.mark.faults]
UNLIMITED = {"a": {}, "b": {"agents": 2, "router": "random"}}
"""Relaxed streams with no in-flight limit: every job is queued at enqueue, so a cancel has queued ones."""


def enqueue(tmp_path: Path, env: dict[str, str], **kw: Any) -> Path:
    path = write_config(tmp_path, **kw)
    r = swarmq("enqueue", str(path), env=env)
    assert r.returncode == 0, r.stderr
    return path


def statuses(database_url: str, name: str | None = None) -> dict[str, int]:
    where = f"WHERE experiment_id = (SELECT id FROM experiments WHERE name = '{name}')" if name else ""
    with db(database_url) as conn:
        return dict(conn.execute(f"SELECT status, count(*) FROM jobs {where} GROUP BY status").fetchall())


def queue_length(redis_url: str) -> int:
    return int(redis_lib.Redis.from_url(redis_url).llen(keys.queue_name("stand-in.gguf")))


def ok(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    r = swarmq(*args, env=env)
    assert r.returncode == 0, (args, r.stdout, r.stderr[-1500:])
    return r


def model_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    """A worker that names its model: with no active experiment there is none to take it from."""
    cmd = [
        sys.executable,
        "-m",
        "swarmq",
        "worker",
        "--cpu",
        "--model",
        "stand-in.gguf",
        "--generator",
        "tests.fakes:hash_generator",
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_cancel_mid_run_with_two_workers(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """Running jobs finish; nothing cancelled runs afterwards, is re-published by the reaper, or stays queued."""
    # Each worker generates two jobs, then holds its next until the cancel is done: jobs certainly remain to
    # cancel, however slowly the cancel command starts on a loaded machine.
    gate = tmp_path / "gate"
    env = {**services_env, **FAST, "SWARMQ_TEST_GATE_AFTER": "2", "SWARMQ_TEST_GATE": str(gate)}
    enqueue(tmp_path, env, name="cx", limit=12, conditions=UNLIMITED)
    workers = [start_worker(env, generator="gated_generator", burst=False, name=f"w{i}") for i in range(2)]
    try:
        wait_for(lambda: scalar(database_url, "SELECT count(*) FROM outcomes") >= 3, 60, "a few outcomes")
        r = ok("cancel", "cx", "--format", "json", env=env)
        gate.touch()
        change = json.loads(r.stdout)
        assert change["state"] == "cancelled" and change["jobs"] > 0
        # The cancelled jobs' messages left the broker: cancel took out those queued, and a release that a
        # finishing job published while the cancel ran is dropped by the claim once a worker is free.
        wait_for(lambda: queue_length(redis_url) == 0, 30, "the cancelled jobs' messages to leave the broker")
        wait_for(lambda: "running" not in statuses(database_url), 30, "running jobs to finish")
        after = statuses(database_url)
        time.sleep(3)  # several reaper passes (0.5 s) of two live workers
        assert statuses(database_url) == after  # nothing re-published, nothing run
        assert queue_length(redis_url) == 0
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            out, _ = w.communicate(timeout=30)
            assert w.returncode == 0, out[-3000:]
    assert set(after) <= {"done", "cancelled"}, after
    assert after["cancelled"] == change["jobs"]
    with db(database_url) as conn:
        # Cancelled jobs were never claimed; every done job has exactly one outcome, cancelled ones none.
        assert (
            conn.execute(
                "SELECT count(*) FROM jobs WHERE status = 'cancelled' AND started_at IS NOT NULL"
            ).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM outcomes o JOIN jobs j ON j.id = o.job_id WHERE j.status = 'cancelled'"
            ).fetchone()[0]
            == 0
        )
        assert conn.execute("SELECT count(*), count(DISTINCT job_id) FROM outcomes").fetchone() == (
            after["done"],
            after["done"],
        )
    listed = json.loads(ok("experiments", "--format", "json", env=env).stdout)["experiments"]
    assert [(e["name"], e["state"], e["done"], e["cancelled"], e["queued"]) for e in listed] == [
        ("cx", "cancelled", after["done"], after["cancelled"], 0)
    ]
    status = json.loads(ok("status", "cx", "--format", "json", env=env).stdout)
    assert status["complete"] and status["state"] == "cancelled"
    # Cancel is final: resume, retry and a resumed enqueue are refused with the lifecycle's exit code.
    for args in (("resume", "cx"), ("retry", "cx", "--failed"), ("enqueue", str(tmp_path / "cx.yaml"))):
        r = swarmq(*args, env=env)
        last = r.stderr.splitlines()[-1]  # enqueue notes its dataset first
        assert r.returncode == 4 and last.startswith("swarmq: error: ") and "cancelled" in last, (
            args,
            r.stderr,
        )


def test_a_running_job_whose_worker_dies_after_cancel_is_not_run_again(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    calls = tmp_path / "calls"
    env = {**services_env, **FAST, "SWARMQ_TEST_HANG": "def truncate_number", "SWARMQ_TEST_CALLS": str(calls)}
    enqueue(tmp_path, env, name="die", limit=4, conditions={"s": {"agents": 1, "accumulate": True}})
    w = start_worker(env, generator="hanging_generator", burst=False)
    try:
        wait_for(
            lambda: (
                scalar(database_url, "SELECT instance_id FROM jobs WHERE status = 'running'") == "HumanEval/2"
            ),
            60,
            "the hanging job to run",
        )
        ok("cancel", "die", env=env)
        assert statuses(database_url) == {"done": 2, "running": 1, "cancelled": 1}
    finally:
        w.kill()  # kill -9: the running job's lease expires
        w.communicate(timeout=30)
    other = model_worker(env)  # any live worker reaps
    try:
        # Its reaper finds the expired lease: the job goes to its experiment's state, not back to the queue.
        wait_for(
            lambda: statuses(database_url) == {"done": 2, "cancelled": 2}, 30, "the dead job to be cancelled"
        )
        time.sleep(1.5)
    finally:
        other.send_signal(signal.SIGTERM)
        other.communicate(timeout=30)
    assert len(calls.read_text().splitlines()) == 3  # HumanEval/0, 1, and 2 once; never 2 again, never 3
    assert statuses(database_url) == {"done": 2, "cancelled": 2}


def test_pause_and_resume_lose_nothing(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """Paused mid-run, strict and relaxed streams stop; stale deliveries are dropped; resume finishes every job
    exactly once, and the swarm state in Redis equals what the outcomes say."""
    gate = tmp_path / "gate"
    env = {**services_env, **FAST, "SWARMQ_TEST_GATE_AFTER": "4", "SWARMQ_TEST_GATE": str(gate)}
    enqueue(tmp_path, env, name="pz", limit=8, conditions=CONDS)
    w = start_worker(env, generator="gated_generator")
    # The fifth job is held in its generation: the pause lands mid-run whatever the machine's load.
    wait_for(lambda: scalar(database_url, "SELECT count(*) FROM outcomes") >= 4, 60, "some outcomes")
    wait_for(lambda: statuses(database_url).get("running", 0) > 0, 60, "a job held in flight")
    ok("pause", "pz", env=env)
    gate.touch()
    out, _ = w.communicate(timeout=60)  # a burst worker has nothing left: the paused jobs are not available
    assert w.returncode == 0, out[-3000:]
    held = statuses(database_url)
    assert "queued" not in held and "running" not in held and held.get("paused", 0) > 0, held
    assert queue_length(redis_url) == 0
    # Stale copies of the paused jobs' messages (a broker redelivery): a worker drops them and runs nothing.
    code = (
        "from swarmq.queue.broker import make_app, publish\nimport os, psycopg\n"
        "c = psycopg.connect(os.environ['SWARMQ_DATABASE_URL'].replace('+psycopg', ''))\n"
        "ids = [r[0] for r in c.execute(\"SELECT id FROM jobs WHERE status = 'paused'\")]\n"
        "publish(make_app(os.environ['SWARMQ_REDIS_URL']), [(i, 'stand-in.gguf') for i in ids])\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    stale = model_worker(env)
    try:
        wait_for(lambda: queue_length(redis_url) == 0, 30, "the stale deliveries to be consumed")
        time.sleep(1.5)
        assert statuses(database_url) == held
    finally:
        stale.send_signal(signal.SIGTERM)
        stale.communicate(timeout=30)
    paused = json.loads(ok("status", "pz", "--format", "json", env=env).stdout)
    assert paused["state"] == "paused" and not paused["complete"]
    r = ok("resume", "pz", "--format", "json", env=env)
    assert json.loads(r.stdout)["jobs"] == held["paused"]
    w = start_worker(env)
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]
    assert_exactly_once(database_url, redis_url, 24)


def test_retry_failed_runs_a_poison_job_again(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_MAX_ATTEMPTS": "1", "SWARMQ_TEST_POISON": "def truncate_number"}
    enqueue(tmp_path, env, name="rt", limit=4, conditions={"baseline": {}})
    deadline = time.monotonic() + 90
    while statuses(database_url).keys() - {"done", "failed"} and time.monotonic() < deadline:
        start_worker(env, generator="crash_generator").communicate(timeout=60)
    assert statuses(database_url) == {"done": 3, "failed": 1}
    r = ok("retry", "rt", "--failed", "--format", "json", env=env)
    assert json.loads(r.stdout)["jobs"] == 1
    assert statuses(database_url) == {"done": 3, "queued": 1}
    w = start_worker({**env, "SWARMQ_TEST_POISON": "never"}, generator="crash_generator")
    out, _ = w.communicate(timeout=60)
    assert w.returncode == 0, out[-3000:]
    assert_exactly_once(database_url, redis_url, 4)
    assert scalar(database_url, "SELECT attempts FROM jobs WHERE instance_id = 'HumanEval/2'") == 1


def test_delete_removes_rows_keys_and_messages(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    r = redis_lib.Redis.from_url(redis_url)
    env = {**services_env, **FAST}
    enqueue(tmp_path, env, name="keep", limit=2)
    w = start_worker(env)
    assert w.communicate(timeout=60) and w.returncode == 0
    keep_keys = set(r.scan_iter(match=f"{keys.STREAM_PREFIX}*"))
    assert keep_keys
    enqueue(tmp_path, env, name="gone", limit=3)
    w = start_worker(env)
    assert w.communicate(timeout=60) and w.returncode == 0
    enqueue(tmp_path, env, name="gone2", limit=3, conditions=UNLIMITED)  # queued, never run: messages waiting
    assert queue_length(redis_url) == 6
    assert len(set(r.scan_iter(match=f"{keys.STREAM_PREFIX}*"))) > len(keep_keys)

    refused = swarmq("delete", "gone", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    with db(database_url) as conn:  # a job still running blocks a delete
        conn.execute(
            "UPDATE jobs SET status = 'running' WHERE id = (SELECT min(id) FROM jobs j "
            "WHERE j.experiment_id = (SELECT id FROM experiments WHERE name = 'gone'))"
        )
    refused = swarmq("delete", "gone", "--yes", env=env)
    assert refused.returncode == 4 and "1 running job" in refused.stderr and "--force" in refused.stderr
    ok("delete", "gone", "--yes", "--force", env=env)
    ok("delete", "gone2", "--yes", env=env)

    assert set(r.scan_iter(match=f"{keys.STREAM_PREFIX}*")) == keep_keys
    assert queue_length(redis_url) == 0
    with db(database_url) as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM experiments")] == ["keep"]
        for table in ("issues", "jobs", "outcomes"):
            left = conn.execute(
                f"SELECT count(DISTINCT experiment_id) FROM {table}"
                if table != "outcomes"
                else "SELECT count(*) FROM outcomes o JOIN jobs j ON j.id = o.job_id "
                "WHERE j.experiment_id <> (SELECT id FROM experiments)"
            ).fetchone()[0]
            assert left == (1 if table != "outcomes" else 0), table
    gone = swarmq("delete", "gone", "--yes", env=env)
    assert gone.returncode == 4 and "unknown experiment 'gone'" in gone.stderr
    # The name is free again: a new experiment under it starts from nothing.
    enqueue(tmp_path, env, name="gone", limit=3)
    fresh = statuses(database_url, "gone")
    assert sum(fresh.values()) == 6 and set(fresh) <= {"pending", "queued"}, fresh


def test_lifecycle_commands_refuse_clearly(services_env: dict[str, str]) -> None:
    for args in (("pause", "nope"), ("resume", "nope"), ("cancel", "nope"), ("retry", "nope", "--failed")):
        r = swarmq(*args, env=services_env)
        assert r.returncode == 4 and "unknown experiment 'nope'" in r.stderr, (args, r.stderr)
    r = swarmq("retry", "nope", env=services_env)
    assert r.returncode == 2 and "--failed" in r.stderr
    r = swarmq("experiments", "--format", "csv", env=services_env)
    assert r.returncode == 2 and "'csv' is not one of" in r.stderr
    r = swarmq("experiments", env=services_env)
    assert r.returncode == 0 and "no experiments yet" in r.stdout


def test_delete_force_leaves_no_key_a_running_worker_writes_back(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """A worker holds a message of two jobs of two streams; the experiment is deleted with --force while the
    first generates. The second job then finds its stream's state missing: the rebuild it starts must not
    leave the deleted experiment's keys behind (they would never expire)."""
    gate = tmp_path / "gate"
    env = {**services_env, "SWARMQ_TEST_GATE_AFTER": "0", "SWARMQ_TEST_GATE": str(gate)}
    swarm = {"swarm": {"agents": 2, "router": "round_robin", "accumulate": True}}
    enqueue(
        tmp_path, env, name="doomed", limit=2, conditions=swarm, replicates=2, extra={"jobs_per_message": 2}
    )
    w = start_worker(env, generator="steady_generator")
    try:
        wait_for(
            lambda: scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'") == 2,
            60,
            "a claim",
        )
        ok("delete", "doomed", "--yes", "--force", env=env)
        gate.touch()
        out, _ = w.communicate(timeout=120)
    finally:
        w.kill()
    assert w.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    r = redis_lib.Redis.from_url(redis_url)
    assert list(r.scan_iter(match=f"{keys.STREAM_PREFIX}*")) == [], out[-3000:]
