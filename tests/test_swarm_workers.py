"""The swarm across worker processes: strict streams are deterministic, relaxed streams lose or double no
update, the state can be shown and rebuilt from Postgres. Stand-in generator; real services and workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, swarmq
from tests.helpers import write_config
from tests.test_reliability import assert_exactly_once

pytestmark = pytest.mark.services
STAND_IN = ["--generator", "tests.fakes:hash_generator"]


def run_workers(env: dict[str, str], n: int) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "swarmq", "worker", "--cpu", "--burst", *STAND_IN, "--name", f"w{i}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out[-3000:]


def routing(database_url: str, name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        return conn.execute(
            "SELECT j.condition, j.replicate, j.position, o.agent_id, o.state_version, o.example_ids, o.success "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id JOIN experiments e ON e.id = j.experiment_id "
            "WHERE e.name = %s ORDER BY 1, 2, 3",
            (name,),
        ).fetchall()


SWARM = {
    "affinity": {"agents": 3, "router": "affinity", "accumulate": True, "max_examples": 2},
    "ucb": {"agents": 2, "router": "ucb", "accumulate": True},
}


def test_strict_streams_are_deterministic(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """Two runs of the same experiment, with different numbers of workers: the same routing sequence."""
    for name, workers in (("det-a", 1), ("det-b", 2)):
        cfg = write_config(tmp_path, name=name, limit=10, replicates=2, conditions=SWARM)
        assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
        run_workers(services_env, workers)
    a, b = routing(database_url, "det-a"), routing(database_url, "det-b")
    assert len(a) == 40
    # Experiment names differ, so job ids (the example ids) differ; everything else must match.
    assert [r[:5] + r[6:] for r in a] == [r[:5] + r[6:] for r in b]
    assert [len(r[5]) for r in a] == [len(r[5]) for r in b]
    for cond in SWARM:  # strict: each job saw every earlier update of its stream
        for rep in (0, 1):
            versions = [r[4] for r in a if r[0] == cond and r[1] == rep]
            assert versions == list(range(10))
    assert {r[3] for r in a if r[0] == "affinity"} == {0, 1, 2}  # routing really varied
    assert any(r[5] for r in a)  # and accumulated examples were shown


def test_relaxed_stream_hammered_by_several_workers(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    conditions = {
        "hot": {
            "agents": 3,
            "router": "random",
            "accumulate": True,
            "ordering": "relaxed",
            "max_in_flight": 4,
        }
    }
    env = {**services_env, "SWARMQ_TEST_GEN_DELAY": "0.02"}
    cfg = write_config(tmp_path, name="hot", limit=40, conditions=conditions)
    assert swarmq("enqueue", str(cfg), env=env).returncode == 0
    run_workers(env, 3)
    assert_exactly_once(database_url, redis_url, 40)
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        workers = conn.execute("SELECT count(DISTINCT worker) FROM outcomes").fetchone()[0]
    assert workers >= 2  # the stream really was shared


def test_state_show_and_rebuild(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    cfg = write_config(tmp_path, name="st", limit=6, conditions=SWARM)
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    run_workers(services_env, 1)
    shown = swarmq("state", "show", "st", "--format", "json", env=services_env)
    assert shown.returncode == 0, shown.stderr
    before = json.loads(shown.stdout)
    streams = {(s["condition"], s["replicate"]): s for s in before["streams"]}
    assert set(streams) == {("affinity", 0), ("ucb", 0)}
    assert streams[("affinity", 0)]["version"] == 6 and len(streams[("affinity", 0)]["agents"]) == 3
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        succ = conn.execute(
            "SELECT count(*) FROM outcomes o JOIN jobs j ON j.id = o.job_id WHERE j.condition = 'affinity' AND o.success"
        ).fetchone()[0]
    hist = streams[("affinity", 0)]["agents"]
    assert sum(t["successes"] for a in hist for t in a["history"].values()) == succ
    assert all(a["buffer_size"] <= 2 for a in hist)  # max_examples
    import redis as redis_lib

    redis_lib.Redis.from_url(redis_url).flushdb()
    gone = json.loads(swarmq("state", "show", "st", "--format", "json", env=services_env).stdout)
    assert all(s["version"] is None for s in gone["streams"])
    rebuilt = swarmq("state", "rebuild", "st", env=services_env)
    assert rebuilt.returncode == 0 and "rebuilt 2 streams" in rebuilt.stdout
    assert json.loads(swarmq("state", "show", "st", "--format", "json", env=services_env).stdout) == before


def test_results_by_agent_and_export_fields(tmp_path: Path, services_env: dict[str, str]) -> None:
    cfg = write_config(tmp_path, name="by", limit=6, conditions=SWARM)
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    run_workers(services_env, 1)
    res = json.loads(swarmq("results", "by", "--by", "agent", "--format", "json", env=services_env).stdout)
    assert res["by"] == "agent"
    assert sum(g["jobs"] for g in res["groups"] if g["condition"] == "affinity") == 6
    assert {g["agent"] for g in res["groups"] if g["condition"] == "ucb"} <= {0, 1}
    assert set(res["specialization"]) == {"affinity", "ucb"}
    out = tmp_path / "o.jsonl"
    assert swarmq("export", "by", "--format", "jsonl", "-o", str(out), env=services_env).returncode == 0
    line = json.loads(out.read_text().splitlines()[0])
    assert {"agent_id", "task_type", "state_version", "success"} <= set(line)
    csv_out = swarmq("results", "by", "--format", "csv", env=services_env).stdout.splitlines()
    assert csv_out[0].startswith("condition,jobs,done,failed") and len(csv_out) == 3


def test_a_deleted_and_reenqueued_experiment_starts_from_a_fresh_swarm(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    cfg = write_config(tmp_path, name="again", limit=4, conditions=SWARM)
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    run_workers(services_env, 1)
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DELETE FROM experiments WHERE name = 'again'")  # Redis still holds the old run's state
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    run_workers(services_env, 1)
    state = json.loads(swarmq("state", "show", "again", "--format", "json", env=services_env).stdout)
    assert [s["version"] for s in state["streams"]] == [4, 4]  # not 8: nothing inherited
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT min(state_version), max(state_version) FROM outcomes").fetchone() == (
            0,
            3,
        )
