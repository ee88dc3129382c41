"""`JobRunner` in process: the whole job path (claim, swarm state, plan, generate, judge, outcome, update,
release) on real Postgres and Redis with the scripted stand-in model, one delivery at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from swarmq.errors import GenerationError
from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.model.base import Generation, GenerationRequest
from swarmq.model.scripted import ScriptedGenerator
from swarmq.queue.broker import make_app
from swarmq.queue.producer import enqueue
from swarmq.store.outcomes import stream_outcomes
from swarmq.streams.updates import issue_of, update_of
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.state import Stream, state_from_updates
from swarmq.worker.runner import JobRunner, RunnerIdentity
from tests.helpers import write_config

pytestmark = pytest.mark.services
SWARM = {"baseline": {}, "swarm": {"agents": 2, "router": "round_robin", "accumulate": True}}


def runner(svc: Any, generator: Any) -> JobRunner:
    return JobRunner(
        svc.sessions,
        SwarmStore(svc.redis),
        generator,
        make_app(svc.redis_url),
        RunnerIdentity("test-runner@here", None),
        model_key="stand-in.gguf",
        lease_seconds=60,
        heartbeat_seconds=10,
        outage_seconds=5,
        max_attempts=3,
    )


def setup(svc: Any, tmp_path: Path, **kw: Any) -> Any:
    cfg = load_config(write_config(tmp_path, **kw))
    return enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))


def rows(svc: Any, sql: str) -> list[Any]:
    with svc.sessions() as session:
        return list(session.execute(text(sql)).all())


def drain(svc: Any, run: JobRunner) -> list[str]:
    """Deliver queued jobs in publish order until none is queued (a strict stream releases its next)."""
    results = []
    while queued := rows(svc, "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1"):
        results.append(run.run(int(queued[0][0])))
    return results


def test_runs_every_job_once_and_keeps_redis_equal_to_a_replay(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=4, conditions=SWARM)
    assert rows(svc, "SELECT status, count(*) FROM jobs GROUP BY 1 ORDER BY 1") == [
        ("pending", 3),
        ("queued", 5),
    ]
    run = runner(svc, ScriptedGenerator())
    assert drain(svc, run) == ["done"] * 8
    assert rows(svc, "SELECT status, count(*) FROM jobs GROUP BY 1") == [("done", 8)]
    assert rows(svc, "SELECT count(DISTINCT job_id), bool_and(update_applied) FROM outcomes") == [(8, True)]
    # The swarm's buffers and histories in Redis are exactly the pure replay of its outcomes in Postgres.
    ((exp_id, name),) = rows(svc, "SELECT id, name FROM experiments")
    stream = Stream(exp_id, name, "swarm", 0)
    with svc.sessions() as session:
        cfg = run.sync.experiment(session, exp_id).config
        pairs = stream_outcomes(session, stream)
        issues = {r.id: issue_of(r) for r in session.execute(text("SELECT * FROM issues")).all()}
    updates = [update_of(j, o, issues[j.issue_id], cfg) for j, o in pairs]
    replayed, applied = state_from_updates(updates, 2, 5)
    assert SwarmStore(svc.redis).peek(stream, 2) == replayed and len(applied) == 4
    # Round robin over two agents, in position order: 0, 1, 0, 1; each outcome records its state version.
    assert rows(
        svc,
        "SELECT o.agent_id, o.state_version FROM outcomes o JOIN jobs j ON j.id = o.job_id "
        "WHERE j.condition = 'swarm' ORDER BY j.position",
    ) == [(0, 0), (1, 1), (0, 2), (1, 3)]


def test_a_second_delivery_is_dropped(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=1, conditions={"baseline": {}})
    run = runner(svc, ScriptedGenerator())
    ((job_id,),) = rows(svc, "SELECT id FROM jobs")
    assert run.run(job_id) == "done"
    assert run.run(job_id) == "dropped"
    assert rows(svc, "SELECT count(*) FROM outcomes") == [(1,)]
    assert run.jobs_done == 1


class TooLong(ScriptedGenerator):
    def generate(self, request: GenerationRequest) -> Generation:
        if "def truncate_number" in request.prompt:
            raise GenerationError("Requested tokens (9000) exceed context window of 2048")
        return super().generate(request)


def test_a_prompt_the_model_cannot_take_is_that_jobs_error_outcome(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=3, conditions={"swarm": SWARM["swarm"]})
    assert drain(svc, runner(svc, TooLong())) == ["done", "done", "failed"]
    failed = "SELECT j.instance_id, o.score_status, o.error FROM jobs j JOIN outcomes o ON o.job_id = j.id "
    reason = "Requested tokens (9000) exceed context window of 2048"
    assert rows(svc, failed + "WHERE j.status = 'failed'") == [("HumanEval/2", "skipped", reason)]


def test_results_by_agent_keep_replicates_apart(svc: Any, tmp_path: Path) -> None:
    """Agent 0 of replicate 0 and agent 0 of replicate 1 are different agents: never pooled into one row."""
    from swarmq.report.results import results

    setup(svc, tmp_path, limit=4, replicates=2, conditions={"swarm": SWARM["swarm"]})
    assert set(drain(svc, runner(svc, ScriptedGenerator()))) == {"done"}
    with svc.sessions() as session:
        groups = results(session, "t", by="agent")["groups"]
    keys = [(g["condition"], g["replicate"], g["agent"]) for g in groups]
    assert keys == [("swarm", r, a) for r in (0, 1) for a in (0, 1)]
    assert [g["jobs"] for g in groups] == [2, 2, 2, 2]  # round robin: each agent of each replicate took 2


class AlwaysAnswers(ScriptedGenerator):
    def generate(self, request: GenerationRequest) -> Generation:
        return Generation("    return 1\n", "stop", 1, 1, 0.001, 0.001)


def test_a_rebuilt_relaxed_stream_equals_the_live_one(svc: Any, tmp_path: Path) -> None:
    """Updates can reach Redis in another order than their outcomes were committed (relaxed streams, several
    workers): the rebuild replays them in the order Redis applied them, so the buffers come out the same."""
    relaxed = {"swarm": {"agents": 1, "router": "single", "accumulate": True, "ordering": "relaxed"}}
    setup(svc, tmp_path, limit=3, conditions=relaxed)
    run = runner(svc, AlwaysAnswers())
    assert drain(svc, run) == ["done"] * 3
    ((exp_id, name),) = rows(svc, "SELECT id, name FROM experiments")
    stream, store = Stream(exp_id, name, "swarm", 0), SwarmStore(svc.redis)
    with svc.sessions() as session:
        cfg = run.sync.experiment(session, exp_id).config
        pairs = stream_outcomes(session, stream)
        issues = {r.id: issue_of(r) for r in session.execute(text("SELECT * FROM issues")).all()}
    first, second, third = (update_of(j, o, issues[j.issue_id], cfg) for j, o in pairs)
    store.delete(stream, 1)  # replay the live history with the last two updates arriving swapped
    store.restore(stream, 1, state_from_updates([], 1, 5)[0], [])
    for update in (first, third, second):
        run.sync.apply(stream, cfg, update)
    live = store.peek(stream, 1)
    assert live is not None and [e.id for e in live.buffers[0]] == [
        str(u.job_id) for u in (first, third, second)
    ]
    store.delete(stream, 1)
    assert run.sync.rebuild(stream, cfg)
    assert store.peek(stream, 1) == live


def test_outcomes_record_what_routing_chose_from(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=2, conditions={"r": {"agents": 3, "router": "random"}})
    drain(svc, runner(svc, ScriptedGenerator()))
    recorded = rows(svc, "SELECT routing FROM outcomes")
    assert recorded == [({"probabilities": [1 / 3] * 3, "scores": None},)] * 2


def test_conditions_are_compared_on_matched_pairs(svc: Any, tmp_path: Path) -> None:
    from swarmq.report.paired import compare
    from swarmq.report.results import results

    setup(svc, tmp_path, limit=5, replicates=2, conditions=SWARM)
    drain(svc, runner(svc, ScriptedGenerator()))
    sql = "SELECT j.condition, j.replicate, j.instance_id, o.success FROM jobs j JOIN outcomes o ON o.job_id = j.id"
    outcome = {(c, r, i): bool(s) for c, r, i, s in rows(svc, sql)}
    cells = sorted((r, i) for (c, r, i) in outcome if c == "baseline")
    issues = sorted({i for _, i in cells})
    expected = compare(
        [int(outcome[("baseline", r, i)]) - int(outcome[("swarm", r, i)]) for r, i in cells],
        [issues.index(i) for _, i in cells],
        [r for r, _ in cells],
        two_way=False,
    )
    with svc.sessions() as session:
        data = results(session, "t")
        recounted = results(session, "t", recount=True)
    (comp,) = data["comparisons"]
    assert (comp["a"], comp["b"], comp["pairs"], comp["issues"]) == ("baseline", "swarm", 10, 5)
    assert comp["paired_diff"] == pytest.approx(expected.diff)
    assert comp["p_paired"] == pytest.approx(expected.p) and comp["p_holm"] == pytest.approx(expected.p)
    assert comp["paired_ci95"] == pytest.approx(list(expected.ci95))
    assert comp["conditional"] and not comp["two_way"]  # the swarm accumulates; 2 replicates are too few
    assert recounted["comparisons"] == data["comparisons"]
    assert all(g["issues"] == 5 and len(g["ci95_clustered"]) == 2 for g in data["groups"])
    assert data["interim"] is False


def test_views_status_and_results_count_alike(svc: Any, tmp_path: Path) -> None:
    """psql's view, `swarmq status` and `swarmq results` agree on successes, scoring errors and the rate."""
    from swarmq.report.progress import progress
    from swarmq.report.results import results

    setup(svc, tmp_path, limit=6, conditions={"a": {}})
    drain(svc, runner(svc, AlwaysAnswers()))
    with svc.sessions() as session:  # one outcome the scorer could not judge
        session.execute(
            text(
                "UPDATE outcomes SET score_status = 'error', success = false WHERE id = (SELECT min(id) FROM outcomes)"
            )
        )
        session.commit()
        (group,) = results(session, "t")["groups"]
        status = progress(session, "t")["total"]
    view = rows(svc, "SELECT successes, scoring_errors, success_rate FROM v_condition_summary")
    assert (
        (group["successes"], group["scoring_errors"])
        == (status["successes"], status["scoring_errors"])
        == (5, 1)
    )
    assert view == [(5, 1, pytest.approx(group["success_rate"]))] and group["success_rate"] == 1.0
