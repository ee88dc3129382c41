"""The swarm state in Redis always equals its rebuild from Postgres: buffers (ids, order, content), histories
and versions, after the faults that used to part them (a kill -9 between a job's Redis apply and its
applied-mark, with one job a message and with several; FLUSHDB while a job generates), and `swarmq state
check` says so, or names each difference."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from swarmq.report.swarm_state import STATE_DIFFERS
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.state import Stream
from tests.conftest import swarmq
from tests.test_reliability import (
    FAST,
    assert_exactly_once,
    assert_redis_equals_rebuild,
    db,
    enqueue,
    scalar,
    start_worker,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.faults]
ONE_AGENT = {"swarm": {"agents": 1, "router": "single", "accumulate": True, "max_examples": 3}}
RELAXED = {
    "swarm": {
        "agents": 1,
        "router": "single",
        "accumulate": True,
        "max_examples": 3,
        "ordering": "relaxed",
        "max_in_flight": 4,
    }
}


def buffer_ids(database_url: str, redis_url: str) -> list[str]:
    with db(database_url) as conn:
        exp_id, name = conn.execute("SELECT id, name FROM experiments").fetchone()
    state = SwarmStore(redis_lib.Redis.from_url(redis_url)).peek(Stream(exp_id, name, "swarm", 0), 1)
    assert state is not None
    return [e.id for e in state.buffers[0]]


def run_to_the_end(env: dict[str, str]) -> None:
    w = start_worker(env, generator="steady_generator")
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]


def job_ids(database_url: str) -> list[str]:
    with db(database_url) as conn:
        return [str(i) for (i,) in conn.execute("SELECT id FROM jobs ORDER BY position").fetchall()]


@pytest.mark.parametrize("conditions", [ONE_AGENT, RELAXED], ids=["one_a_message", "four_a_message"])
def test_kill_between_apply_and_mark_keeps_redis_equal_to_the_rebuild(
    tmp_path: Path,
    services_env: dict[str, str],
    database_url: str,
    redis_url: str,
    conditions: dict[str, Any],
) -> None:
    """One stream, one agent, capacity 3, every job a success; the worker dies right after job 3's apply,
    before its applied-mark (with four jobs a message, before any of the message's marks)."""
    env = {**services_env, **FAST}
    extra = {"jobs_per_message": 4} if conditions is RELAXED else None
    enqueue(tmp_path, env, name="applykill", limit=8, conditions=conditions, extra=extra)
    w = start_worker({**env, "SWARMQ_TEST_KILL_AFTER_APPLY": "3"}, generator="steady_generator")
    out, _ = w.communicate(timeout=120)
    assert w.returncode == -signal.SIGKILL, out[-3000:]
    assert scalar(database_url, "SELECT count(*) FROM outcomes WHERE NOT update_applied") >= 1
    run_to_the_end(env)
    assert_exactly_once(database_url, redis_url, 8)  # includes the full comparison with the rebuild
    # The last three successes, oldest first (one a message: in position order; four: in apply order).
    ids = job_ids(database_url)[-3:] if conditions is ONE_AGENT else buffer_ids(database_url, redis_url)
    assert buffer_ids(database_url, redis_url) == ids and len(ids) == 3
    assert scalar(database_url, "SELECT count(*) FROM outcomes WHERE applied_version IS NULL") == 0
    # A rebuild from Postgres now writes what Redis holds.
    r = swarmq("state", "rebuild", "applykill", env=env)
    assert r.returncode == 0, r.stderr
    assert buffer_ids(database_url, redis_url) == ids
    assert_redis_equals_rebuild(database_url, redis_url)


def test_flushdb_while_a_job_generates_keeps_redis_equal_to_the_rebuild(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    gate = tmp_path / "gate"
    env = {**services_env, **FAST, "SWARMQ_TEST_GATE_AFTER": "3", "SWARMQ_TEST_GATE": str(gate)}
    enqueue(tmp_path, env, name="flushgen", limit=8, conditions=ONE_AGENT)
    w = start_worker(env, generator="steady_generator")
    try:
        wait_for(
            lambda: (
                scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'") == 1
                and scalar(database_url, "SELECT count(*) FROM outcomes") == 3
            ),
            60,
            "the fourth job to be generating",
        )
        redis_lib.Redis.from_url(redis_url).flushdb()  # its state, its queue, its unacked message: all gone
        gate.touch()
        out, _ = w.communicate(timeout=120)
    finally:
        w.kill()
    assert w.returncode == 0, out[-3000:]
    assert_exactly_once(database_url, redis_url, 8)
    assert buffer_ids(database_url, redis_url) == job_ids(database_url)[-3:]


def test_state_check_names_each_difference(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST}
    enqueue(tmp_path, env, name="checked", limit=5, conditions=ONE_AGENT)
    run_to_the_end(env)
    ok = swarmq("state", "check", "checked", env=env)
    assert ok.returncode == 0 and "equals its rebuild" in ok.stdout, ok.stdout + ok.stderr
    with db(database_url) as conn:
        exp_id = conn.execute("SELECT id FROM experiments").fetchone()[0]
    stream = Stream(exp_id, "checked", "swarm", 0)
    r = redis_lib.Redis.from_url(redis_url)
    first = r.lpop(stream.key("buf:0"))  # the buffer's order changes: the oldest example goes last
    r.rpush(stream.key("buf:0"), first)
    r.hincrby(stream.key("hist"), "0:humaneval:a", 1)
    bad = swarmq("state", "check", "checked", env=env)
    assert bad.returncode == STATE_DIFFERS, bad.stdout + bad.stderr
    lines = bad.stdout.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("checked/swarm/r0: agent 0 buffer: redis [") and "rebuild [" in lines[0]
    assert "history" in lines[1] and "successes/attempts" in lines[1]
