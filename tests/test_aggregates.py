"""The results aggregates (migration 0008, `store.aggregates`) give the numbers of the direct GROUP BY
(`report.queries`, ``recount=True``) and equal a full recount (`swarmq_agg_rebuild`) after every kind of write:
finishes, failures, failure outcomes, expired leases, retries, scoring errors, harness verdicts; and after
workers are killed with kill -9 at random points. Real Postgres and Redis."""

from __future__ import annotations

import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.queue import jobs
from swarmq.queue.broker import make_app
from swarmq.queue.producer import enqueue
from swarmq.report import queries
from swarmq.report.results import results
from swarmq.store import aggregates, histograms
from tests.helpers import write_config

pytestmark = pytest.mark.services
CONDITIONS = {
    "baseline": {},
    "swarm": {"agents": 3, "router": "random"},
    "solo": {"agents": 2, "router": "random"},
}
TABLES = {
    "agg_cells": "condition, replicate, task_type, agent",
    "agg_seconds": "condition, replicate, agent, bucket",
    "agg_pairs": "replicate, instance_id",
    "agg_issues": "condition, instance_id",
    "agg_issue_pairs": "a, b, instance_id",
}
NONZERO = {"agg_pairs": "judged <> 0 OR succeeded <> 0"}
"""Rows left at zero (a job's counters moved to its outcome's cell, a retried outcome removed) count nothing."""


def _outcome(rng: random.Random, task_type: str, agents: int) -> dict[str, Any]:
    scored = rng.random()
    tokens = rng.randint(0, 64)
    return {
        "completion": "x",
        "finish_reason": rng.choice(["stop", "length", None]),
        "worker": "w",
        "model_name": "m",
        "model_sha256": "",
        "llama_cpp_version": "",
        "prompt": "",
        "prompt_sha256": "",
        "sampling": {},
        "agent_id": rng.randrange(agents),
        "task_type": task_type,
        "example_ids": [],
        "error": "boom" if rng.random() < 0.1 else None,
        "success": scored >= 0.15 and rng.random() < 0.5,
        "success_rule": "scorer",  # an unjudged one failed
        "score_status": "error" if scored < 0.15 else ("passed" if scored < 0.6 else "failed"),
        "score_detail": {},
        "completion_tokens": tokens,
        "generation_seconds": None if rng.random() < 0.1 else rng.uniform(0.0, 3.0),
        "job_seconds": None if rng.random() < 0.1 else rng.lognormvariate(0, 1.5),
        "resolved": rng.choice([None, None, True, False]),
    }


def _setup(svc: Any, tmp_path: Path, *, limit: int, replicates: int) -> tuple[int, str]:
    cfg = load_config(write_config(tmp_path, limit=limit, conditions=CONDITIONS, replicates=replicates))
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    with svc.sessions() as session:
        session.execute(text("UPDATE jobs SET status = 'queued' WHERE status = 'pending'"))
        session.commit()
        exp_id = session.execute(text("SELECT id FROM experiments")).scalar_one()
    return int(exp_id), cfg.name


def _random_writes(svc: Any, rng: random.Random, fraction: float) -> None:
    """Run part of the experiment through the real transitions, with every kind of ending."""
    with svc.sessions() as session:
        queued = session.execute(
            text(
                "SELECT j.id, j.condition, i.task_type FROM jobs j JOIN issues i ON i.id = j.issue_id "
                "WHERE j.status = 'queued' ORDER BY j.id"
            )
        ).all()
    agents = {c: int(v.get("agents", 1)) for c, v in CONDITIONS.items()}
    for job_id, condition, task_type in queued:
        if rng.random() > fraction:
            continue  # a partial run: this one never starts
        with svc.sessions() as session:
            assert jobs.claim(session, job_id, "w/1", 60, 3) is not None
            end = rng.random()
            if end < 0.7:
                jobs.finish(
                    session,
                    job_id,
                    "w/1",
                    _outcome(rng, task_type, agents[condition]),
                    status=rng.choice(["done", "done", "failed"]),
                )
            elif end < 0.8:
                jobs.fail(session, job_id, "w/1", "unexpected")  # a failure outcome, no agent
            elif end < 0.9:  # the worker died out of attempts: the reaper fails it
                session.execute(
                    text(
                        "UPDATE jobs SET lease_expires_at = now() - interval '1 s', attempts = 3 "
                        "WHERE id = :j"
                    ),
                    {"j": job_id},
                )
                jobs.fail_exhausted(session, 3)
                session.commit()
            # else: still running


def _later_writes(svc: Any, rng: random.Random) -> None:
    """What happens to outcomes afterwards: harness verdicts, a rescored outcome, retries of failed jobs."""
    with svc.sessions() as session:
        ids = list(session.execute(text("SELECT id FROM outcomes ORDER BY id")).scalars())
        for oid in rng.sample(ids, k=len(ids) // 5):
            session.execute(
                text("UPDATE outcomes SET resolved = :r WHERE id = :o"), {"r": rng.random() < 0.5, "o": oid}
            )
        for oid in rng.sample(ids, k=len(ids) // 10):
            error = rng.random() < 0.5
            session.execute(
                text("UPDATE outcomes SET score_status = :s, success = :v WHERE id = :o"),
                {"s": "error" if error else "passed", "v": not error and rng.random() < 0.5, "o": oid},
            )
        session.execute(
            text("UPDATE outcomes SET update_applied = true")
        )  # mark_applied: no aggregate change
        session.commit()
        # `lifecycle.retry_failed`'s writes: failure outcomes removed, their jobs pending again.
        retry = list(
            session.execute(
                text(
                    "SELECT j.id FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.status = 'failed' AND o.agent_id IS NULL"
                )
            ).scalars()
        )
        session.execute(text("DELETE FROM outcomes WHERE job_id = ANY(:ids)"), {"ids": retry})
        session.execute(text("UPDATE jobs SET status = 'pending' WHERE id = ANY(:ids)"), {"ids": retry})
        session.commit()


def _snapshot(svc: Any, exp_id: int) -> dict[str, list[Any]]:
    out = {}
    with svc.sessions() as session:
        for t, key in TABLES.items():
            rows = session.execute(
                text(f"SELECT * FROM {t} WHERE experiment_id = :e ORDER BY {key}"), {"e": exp_id}
            )
            width = len(key.split(", ")) + 1
            out[t] = [
                r
                for r in map(tuple, rows.all())
                if (t == "agg_pairs" and (r[4] or r[5])) or (t != "agg_pairs" and any(r[width:]))
            ]
    return out


def assert_equal_to_recount(svc: Any, exp_id: int) -> None:
    """The maintained tables, once the outcomes written since the last fold are folded (as a report does
    first), equal a rebuild from the rows, row for row (zero rows aside)."""
    aggregates.fold(svc.engine, exp_id)
    kept = _snapshot(svc, exp_id)
    with svc.sessions() as session:
        aggregates.rebuild(session, exp_id)
        session.commit()
    assert _snapshot(svc, exp_id) == kept
    assert kept["agg_cells"], "nothing was counted"


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-9 (sums kept as numeric vs summed as float8), p95 within the histogram's 4.4%."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif path.endswith("p95_seconds") and a is not None and b is not None:
        assert a == pytest.approx(b, rel=2 ** (1 / 16) - 1 + 1e-9), path
    elif isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) and math.isnan(b)):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, path


def test_results_from_aggregates_equal_the_direct_queries(svc: Any, tmp_path: Path) -> None:
    exp_id, name = _setup(svc, tmp_path, limit=12, replicates=3)
    rng = random.Random(7)
    _random_writes(svc, rng, fraction=0.8)
    _later_writes(svc, rng)
    _random_writes(svc, rng, fraction=0.5)  # the retried jobs run again, among others
    with svc.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM jobs WHERE status = 'running'")).scalar_one() > 0
        outcome_kinds = session.execute(
            text(
                "SELECT count(*) FILTER (WHERE score_status = 'error'), count(*) FILTER (WHERE agent_id IS NULL), "
                "count(*) FILTER (WHERE resolved IS NOT NULL) FROM outcomes"
            )
        ).one()
        assert all(k > 0 for k in outcome_kinds), outcome_kinds
        for by in ("condition", "replicate", "agent", "task_type"):
            for matched in (True, False):
                fast = results(session, name, by, matched=matched)
                slow = results(session, name, by, matched=matched, recount=True)
                _same(fast, slow, f"{by}/{matched}")
                assert any(g["outside"] for g in fast["groups"]) or not matched
        for matched in (3, None):
            assert queries.issue_counts(session, exp_id, matched) == queries.issue_counts(
                session, exp_id, matched, recount=True
            )
        for a, b in (("baseline", "swarm"), ("swarm", "baseline"), ("solo", "swarm")):
            assert queries.paired_sums(session, exp_id, a, b) == queries.paired_sums(
                session, exp_id, a, b, recount=True
            )
        ok = session.execute(text("SELECT count(*) FROM v_condition_summary")).scalar_one()
        assert ok == len(CONDITIONS)
    assert_equal_to_recount(svc, exp_id)


def test_outcomes_are_counted_when_folded(svc: Any, tmp_path: Path) -> None:
    """The job path writes outcomes unfolded (migration 0010): the tables hold none of them, the views add them
    as they read, and a fold counts each once, as it is then (updated or deleted since its commit).
    Housekeeping's fold takes only outcomes whose swarm update is marked applied; a report's takes all."""
    exp_id, _ = _setup(svc, tmp_path, limit=12, replicates=3)
    rng = random.Random(11)
    _random_writes(svc, rng, fraction=0.7)
    query = (
        "SELECT (SELECT count(*) FROM outcomes WHERE NOT folded), "
        "(SELECT coalesce(sum(outcomes), 0) FROM agg_cells WHERE experiment_id = :e), "
        "(SELECT sum(outcomes) FROM v_condition_summary), (SELECT count(*) FROM outcomes), "
        "(SELECT count(*) FROM outcomes WHERE update_applied)"
    )
    with svc.sessions() as session:
        unfolded, counted, in_view, written, applied = session.execute(text(query), {"e": exp_id}).one()
    assert unfolded == written == in_view > 10 and counted == 0 and applied == 0
    _later_writes(svc, rng)  # verdicts, rescoring, applied marks, retries: on outcomes not folded yet
    _random_writes(svc, rng, fraction=0.9)  # new outcomes, their updates not marked applied
    with svc.sessions() as session:
        unfolded, counted, in_view, written, applied = session.execute(text(query), {"e": exp_id}).one()
    assert unfolded == written == in_view and counted == 0 and 5 < applied < written
    assert aggregates.fold(svc.engine, exp_id, batch=5, wait=False) == 5
    assert aggregates.fold(svc.engine, exp_id, wait=False) == applied - 5
    assert aggregates.fold(svc.engine, exp_id) == written - applied
    assert aggregates.fold(svc.engine, exp_id) == 0
    with svc.sessions() as session:
        assert session.execute(text(query), {"e": exp_id}).one()[:4] == (0, written, written, written)
    _later_writes(svc, rng)  # the same kinds of writes to folded outcomes: the triggers apply them
    assert_equal_to_recount(svc, exp_id)


def test_the_condition_summary_view_reads_the_aggregates(svc: Any, tmp_path: Path) -> None:
    """v_condition_summary keeps revision 0003's meaning (its scan over v_outcomes is the reference here)."""
    _setup(svc, tmp_path, limit=6, replicates=2)
    _random_writes(svc, random.Random(3), fraction=0.9)
    reference = """
        SELECT experiment, condition, count(*), count(*) FILTER (WHERE status = 'done'),
               count(*) FILTER (WHERE status = 'failed'), count(success), count(*) FILTER (WHERE score_status = 'error'),
               count(*) FILTER (WHERE success), avg(success::int) FILTER (WHERE score_status IS DISTINCT FROM 'error'),
               count(*) FILTER (WHERE resolved), count(resolved), avg(job_seconds),
               sum(completion_tokens) / nullif(sum(generation_seconds), 0), avg((finish_reason = 'length')::int)
        FROM v_outcomes GROUP BY experiment, condition ORDER BY 1, 2"""
    with svc.sessions() as session:
        view = session.execute(text("SELECT * FROM v_condition_summary ORDER BY 1, 2")).all()
        ref = session.execute(text(reference)).all()
    _same(
        [
            tuple(float(x) if hasattr(x, "as_integer_ratio") and not isinstance(x, int) else x for x in r)
            for r in view
        ],
        [
            tuple(float(x) if hasattr(x, "as_integer_ratio") and not isinstance(x, int) else x for x in r)
            for r in ref
        ],
    )


@pytest.mark.parametrize("seconds", [0.0, 1e-9, 0.001, 0.3, 1.0, 1.7, 2.0, 59.9, 3600.0, 86400.0 * 30])
def test_the_histogram_keeps_a_time_within_its_bucket(svc: Any, seconds: float) -> None:
    with svc.sessions() as session:
        bucket = session.execute(text("SELECT swarmq_agg_bucket(:s)"), {"s": seconds}).scalar_one()
    value = histograms.bucket_value(bucket)
    if seconds < 2**-20:
        assert value == 0.0
    elif seconds < 2**20:
        assert value / seconds == pytest.approx(1.0, abs=2 ** (1 / 16) - 1)


def test_quantile_matches_percentile_cont_on_bucket_values() -> None:
    values = sorted(random.Random(1).lognormvariate(0, 1) for _ in range(101))
    histogram: dict[int, int] = {}
    for v in values:
        b = math.floor(histograms.BUCKETS_PER_OCTAVE * math.log2(v))
        histogram[b] = histogram.get(b, 0) + 1
    exact = values[95]  # rank 0.95 · 100 = 95: no interpolation
    got = histograms.quantile(sorted(histogram.items()), 0.95)
    assert got == pytest.approx(exact, rel=2 ** (1 / 16) - 1)
    assert histograms.quantile([], 0.95) is None
    assert histograms.quantile([(0, 1), (8, 1)], 0.5) == pytest.approx((2 ** (0.5 / 8) + 2 ** (8.5 / 8)) / 2)


def test_single_jobs_are_deleted_only_with_their_experiment(svc: Any, tmp_path: Path) -> None:
    exp_id, _ = _setup(svc, tmp_path, limit=2, replicates=1)
    with svc.sessions() as session:
        with pytest.raises(Exception, match="deleted with their experiment"):
            session.execute(text("DELETE FROM jobs WHERE id = (SELECT min(id) FROM jobs)"))
        session.rollback()
        session.execute(text("DELETE FROM experiments WHERE id = :e"), {"e": exp_id})
        session.commit()
        assert session.execute(text("SELECT count(*) FROM agg_cells")).scalar_one() == 0


@pytest.mark.faults
def test_aggregates_equal_a_recount_after_kill9s(
    tmp_path: Path, services_env: dict[str, str], svc: Any
) -> None:
    """Real workers killed with kill -9 at random points (mid-generation, right after the outcome commit, around
    the swarm update), the reaper failing jobs out of attempts: whatever committed is counted once, whatever
    did not is not counted. Checked after every worker, against a recount of every experiment."""
    from tests.test_reliability import CONDS, FAST, start_worker
    from tests.test_reliability import enqueue as enqueue_cli

    env = {**services_env, **FAST, "SWARMQ_MAX_ATTEMPTS": "2", "SWARMQ_TEST_KILL_PROB": "0.4"}
    rng = random.Random(5)
    kills, experiments = 0, 0
    deadline = time.monotonic() + 240
    while kills < 8 and time.monotonic() < deadline:
        with svc.sessions() as session:
            left = session.execute(
                text("SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'failed')")
            ).scalar()
        if not left:
            experiments += 1
            enqueue_cli(tmp_path, env, name=f"aggkill{experiments}", limit=4, conditions=CONDS)
        point = rng.choice(["generate", "after_outcome", "before_update", "after_update"])
        w = start_worker({**env, "SWARMQ_TEST_KILL_AT": point}, generator="killer_generator")
        out, _ = w.communicate(timeout=120)
        assert w.returncode in (0, -signal.SIGKILL), out[-3000:]
        kills += w.returncode == -signal.SIGKILL
        with svc.sessions() as session:
            ids = list(session.execute(text("SELECT id FROM experiments")).scalars())
        for exp_id in ids:
            assert_equal_to_recount(svc, int(exp_id))
    assert kills >= 8, f"only {kills} kills"
