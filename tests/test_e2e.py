"""End to end on the real path: real Postgres, real Redis, a real `swarmq worker --cpu --burst` subprocess
running llama-cpp-python on the real demo GGUF, real scoring."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, swarmq
from tests.helpers import write_config

pytestmark = [pytest.mark.services, pytest.mark.model]


def test_enqueue_worker_results(
    tmp_path: Path, services_env: dict[str, str], database_url: str, demo_model: Path
) -> None:
    conditions = {"baseline": {}, "swarm": {"agents": 2, "router": "round_robin", "accumulate": True}}
    cfg = write_config(
        tmp_path,
        name="e2e",
        limit=2,
        replicates=2,
        conditions=conditions,
        model=str(demo_model),
        success="scorer",
        max_tokens=48,
    )
    r = swarmq("enqueue", str(cfg), env=services_env)
    assert r.returncode == 0, r.stderr
    assert "enqueued experiment e2e: 8 jobs" in r.stdout

    # Two real workers at once, each serving the model the oldest unfinished experiment needs.
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "swarmq", "worker", "--cpu", "--burst", "--name", f"cpu{i}"],
            cwd=ROOT,
            env=services_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]

    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT j.condition, j.replicate, j.status, j.attempts, o.completion_tokens, o.finish_reason, o.model_sha256, "
            "o.llama_cpp_version, o.prompt_sha256, o.sampling, o.agent_id, o.update_applied, o.score_status "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id ORDER BY j.seq"
        ).fetchall()
    assert len(rows) == 8
    assert {r[2] for r in rows} == {"done"} and {r[3] for r in rows} == {1}
    assert all(r[4] > 0 for r in rows)  # the real model generated tokens
    assert {r[5] for r in rows} <= {"stop", "length"}
    assert {r[6] for r in rows} == {"a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"}
    assert rows[0][7] == importlib.metadata.version("llama-cpp-python")  # the library that generated it
    sampling = rows[0][9]
    assert sampling["max_tokens"] == 48 and sampling["eog_token_ids"] == [1] and "<eos>" in sampling["stop"]
    assert "\ndef " in sampling["stop"]  # HumanEval's function-boundary stops were added, not substituted
    assert all(r[11] for r in rows)  # every swarm update applied
    assert {r[12] for r in rows} <= {"passed", "failed", "timeout", "error"}
    swarm_agents = [r[10] for r in rows if r[0] == "swarm"]
    assert set(swarm_agents) == {0, 1}  # round robin over two agents
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        workers = {r[0] for r in conn.execute("SELECT DISTINCT worker FROM outcomes")}
    assert len(workers) == 2, workers  # both workers took jobs

    res = swarmq("results", "e2e", "--format", "json", env=services_env)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["experiment"] == "e2e"
    groups = {g["condition"]: g for g in data["groups"]}
    assert set(groups) == {"baseline", "swarm"}
    for g in groups.values():
        assert (g["jobs"], g["done"], g["failed"]) == (4, 4, 0)
        assert g["tokens_per_second"] > 0
        assert 0 <= g["share_max_tokens"] <= 1
        assert g["successes"] == sum(1 for r in rows if r[0] == g["condition"] and r[12] == "passed")
    assert data["comparisons"][0]["a"] == "baseline" and data["comparisons"][0]["b"] == "swarm"

    out = tmp_path / "o.jsonl"
    ex = swarmq("export", "e2e", "--format", "jsonl", "-o", str(out), env=services_env)
    assert ex.returncode == 0, ex.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 8
    for key in (
        "job_id",
        "condition",
        "replicate",
        "instance_id",
        "completion",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "worker",
        "agent_id",
        "task_type",
        "state_version",
        "success",
    ):
        assert key in lines[0]
