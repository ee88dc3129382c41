"""Messages that carry several jobs (``jobs_per_message``): in process, one message's jobs cost one claim, one
outcome INSERT and one release, give the same outcomes as one job per message, and fail, drop or keep each job
on its own; with real worker processes, kill -9 in the middle of a message still ends every job done once."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.model.base import Generation, GenerationRequest
from swarmq.model.scripted import ScriptedGenerator
from swarmq.queue import jobs
from swarmq.queue.broker import make_app
from swarmq.queue.producer import enqueue
from swarmq.store.db import autocommit_connections
from tests.helpers import write_config
from tests.test_reliability import CONDS, FAST, assert_exactly_once, killer_run, scalar, start_worker
from tests.test_reliability import enqueue as enqueue_cli
from tests.test_runner import SWARM, rows, runner

pytestmark = pytest.mark.services


def setup(svc: Any, tmp_path: Path, per_message: int, **kw: Any) -> Any:
    cfg = load_config(write_config(tmp_path, extra={"jobs_per_message": per_message}, **kw))
    return enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))


def queued(svc: Any) -> list[int]:
    return [int(r[0]) for r in rows(svc, "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq")]


def outcomes(svc: Any) -> list[tuple[Any, ...]]:
    """What a run decided, per job, in a form two runs of the same experiment can be compared on."""
    return [
        tuple(r)
        for r in rows(
            svc,
            "SELECT j.condition, j.replicate, j.position, o.agent_id, o.state_version, o.staleness, o.success, "
            "o.completion, o.update_applied FROM outcomes o JOIN jobs j ON j.id = o.job_id "
            "ORDER BY j.condition, j.replicate, j.position",
        )
    ]


def test_a_message_gives_the_outcomes_of_one_job_per_message(svc: Any, tmp_path: Path) -> None:
    """Strict swarm streams (one job in flight each): a message holds at most one job of each, so its jobs see
    exactly the swarm state they would see one at a time: their outcomes match a one-job-per-message run."""
    setup(svc, tmp_path, 1, name="one", limit=4, conditions=SWARM, replicates=2)
    run = runner(svc, ScriptedGenerator())
    while ids := queued(svc):
        assert run.run(ids[0]) == "done"
    one = outcomes(svc)
    with svc.sessions() as session:
        session.execute(text("TRUNCATE experiments, issues, jobs, outcomes RESTART IDENTITY CASCADE"))
        session.commit()
    svc.redis.flushdb()
    setup(svc, tmp_path, 8, name="one", limit=4, conditions=SWARM, replicates=2)
    run = runner(svc, ScriptedGenerator())
    sizes = []
    while queued_now := queued(svc):
        ids = queued_now[:8]  # a message carries at most the experiment's jobs_per_message (the claim checks)
        sizes.append(len(ids))
        assert run.run_many(ids) == ["done"] * len(ids)
    assert sizes[0] >= 4, sizes  # messages of several jobs really ran (the baseline's streams have no limit)
    many = outcomes(svc)
    assert [r for r in many if r[0] == "swarm"] == [r for r in one if r[0] == "swarm"]
    # The baseline's unlimited streams had several jobs in a message: the later ones saw the state before the
    # earlier ones' updates and say so (staleness); what they generated and how they were judged is the same.
    assert [r[:4] + r[6:] for r in many] == [r[:4] + r[6:] for r in one]
    assert any(r[5] > 0 for r in many if r[0] == "baseline")
    assert len(one) == 16 and all(r[-1] for r in many)  # every swarm update applied and marked


def test_a_message_costs_one_claim_one_insert_and_one_release(
    svc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relaxed = {"a": {"agents": 2, "router": "round_robin", "accumulate": True, "ordering": "relaxed"}}
    cfg = load_config(
        write_config(tmp_path, limit=6, conditions=relaxed, extra={"jobs_per_message": 6, "max_spread": 100})
    )
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    ids = queued(svc)
    assert len(ids) == 6
    run = runner(svc, ScriptedGenerator())
    # The first job alone: a worker reads an experiment's row once, and a stream's first job creates its state.
    assert run.run(ids[0]) == "done"
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def seen(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", seen)
    assert run.run_many(ids[1:]) == ["done"] * 5
    monkeypatch.undo()
    kinds = {"claim": "WITH claimed", "outcomes": "INSERT INTO outcomes", "release": "swarmq_release"}
    counts = {k: sum(marker in q for q in sent) for k, marker in kinds.items()}
    assert counts == {"claim": 1, "outcomes": 1, "release": 1}, sent
    assert len(sent) == 3, [q[:80] for q in sent]  # nothing else: no BEGIN/COMMIT, no per-job statement
    assert rows(svc, "SELECT count(*), bool_and(update_applied) FROM outcomes") == [(6, True)]
    # Relaxed: the later jobs of the message saw the state before the earlier ones' updates, and say so.
    assert [
        r[0]
        for r in rows(
            svc, "SELECT o.staleness FROM outcomes o JOIN jobs j ON j.id = o.job_id ORDER BY j.position"
        )
    ] == [0, 0, 1, 2, 3, 4]


def test_each_job_of_a_message_ends_on_its_own(svc: Any, tmp_path: Path) -> None:
    """One job taken by another worker is dropped, one whose generation raises a bug fails with the reason, the
    rest are done; every failed or done job has its outcome."""
    cfg = load_config(
        write_config(
            tmp_path, limit=4, conditions={"a": {}}, extra={"jobs_per_message": 4, "max_spread": 100}
        )
    )
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    ids = queued(svc)
    with autocommit_connections(svc.sessions)() as conn:
        assert jobs.claim(conn, ids[1], "someone/else", 60, 3) is not None
    bug_prompt = rows(
        svc, f"SELECT i.problem FROM jobs j JOIN issues i ON i.id = j.issue_id WHERE j.id = {ids[2]}"
    )

    class Buggy(ScriptedGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            if bug_prompt[0][0] in request.prompt:
                raise RuntimeError("llama_decode returned -3")
            return super().generate(request)

    assert runner(svc, Buggy()).run_many(ids) == ["done", "dropped", "failed", "done"]
    got = {int(j): (s, e) for j, s, e in rows(svc, "SELECT id, status, error FROM jobs")}
    assert got[ids[1]] == ("running", None)  # still the other worker's
    assert got[ids[2]][0] == "failed" and "RuntimeError: llama_decode returned -3" in got[ids[2]][1]
    assert {got[ids[0]][0], got[ids[3]][0]} == {"done"}
    assert sorted(int(r[0]) for r in rows(svc, "SELECT job_id FROM outcomes")) == sorted(
        [ids[0], ids[2], ids[3]]
    )


def test_an_outcome_postgres_refuses_fails_its_own_job_only(svc: Any, tmp_path: Path) -> None:
    """A completion Postgres cannot store (a NUL character) makes the message's one INSERT fail: each outcome is
    then written alone, and only that job fails, with the reason."""
    cfg = load_config(
        write_config(
            tmp_path, limit=3, conditions={"a": {}}, extra={"jobs_per_message": 3, "max_spread": 100}
        )
    )
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    ids = queued(svc)
    nul_prompt = rows(
        svc, f"SELECT i.problem FROM jobs j JOIN issues i ON i.id = j.issue_id WHERE j.id = {ids[1]}"
    )

    class Nul(ScriptedGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            gen = super().generate(request)
            return replace(gen, text="return 1\x00") if nul_prompt[0][0] in request.prompt else gen

    assert runner(svc, Nul()).run_many(ids) == ["done", "failed", "done"]
    got = {int(j): (s, e) for j, s, e in rows(svc, "SELECT id, status, error FROM jobs")}
    assert got[ids[1]][0] == "failed" and "DataError" in got[ids[1]][1], got
    assert got[ids[0]][0] == got[ids[2]][0] == "done"
    assert rows(svc, "SELECT count(*), count(agent_id) FROM outcomes") == [(3, 2)]  # the failure has no agent


def test_a_stuck_job_fails_alone_and_its_message_goes_back(
    svc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job stuck in native code past its deadline fails with the reason and ends the worker; the other jobs
    of its message did nothing wrong: they are queued and published again, not failed."""
    from swarmq.queue.reaper import broker_job_ids
    from swarmq.worker import runner as runner_module
    from swarmq.worker.attempt import RUNNING, Message

    cfg = load_config(
        write_config(
            tmp_path, limit=3, conditions={"a": {}}, extra={"jobs_per_message": 3, "max_spread": 100}
        )
    )
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    ids = queued(svc)
    run = runner(svc, ScriptedGenerator())
    with autocommit_connections(svc.sessions)() as conn:
        claimed = jobs.claim_many(conn, ids, run.identity.owner, 60, 3)
    svc.redis.flushdb()  # the messages were delivered: only what is published again will be there
    exits: list[str] = []
    monkeypatch.setattr(runner_module, "hard_exit", lambda code, line: exits.append(line))
    stuck = Message.of(claimed)
    stuck.states[ids[1]] = RUNNING
    run._stuck(stuck, "generation timed out after 1 s and did not stop")
    got = {int(j): (s, e) for j, s, e in rows(svc, "SELECT id, status, error FROM jobs")}
    assert got[ids[1]] == ("failed", "generation timed out after 1 s and did not stop")
    assert got[ids[0]] == got[ids[2]] == ("queued", None)
    (key,) = {str(r[0]) for r in rows(svc, "SELECT model_key FROM jobs")}
    assert broker_job_ids(svc.redis, {key}) == {ids[0], ids[2]}
    assert len(exits) == 1 and f"job {ids[1]}:" in exits[0]


@pytest.mark.faults
def test_kill9_in_the_middle_of_a_message(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """Workers taking 4 jobs a message, killed at random points (during a generation, after the outcomes, between
    them and the Redis updates, after those): every job still ends done exactly once."""
    env = {**services_env, **FAST, "SWARMQ_MAX_ATTEMPTS": "1000", "SWARMQ_TEST_KILL_PROB": "0.3"}
    rng = random.Random(7)
    kills, experiments = 0, 0
    deadline = time.monotonic() + 240
    while kills < 8 and time.monotonic() < deadline:  # a new experiment while too few workers died
        experiments += 1
        enqueue_cli(
            tmp_path,
            env,
            name=f"batches{experiments}",
            limit=6,
            conditions=CONDS,
            extra={"jobs_per_message": 4, "max_spread": 3},
        )
        while scalar(database_url, "SELECT count(*) FROM jobs WHERE status <> 'done'") and kills < 16:
            kills += killer_run(env, rng) is not None
    w = start_worker(env)
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]
    assert kills >= 8, f"only {kills} kills"
    # Jobs claimed by one statement share its start time: messages of several jobs really ran.
    shared = scalar(
        database_url, "SELECT count(*) FROM (SELECT started_at FROM jobs GROUP BY 1 HAVING count(*) > 1) x"
    )
    assert shared > 0
    assert_exactly_once(database_url, redis_url, 18 * experiments)
    assert scalar(database_url, "SELECT max(attempts) FROM jobs") > 1  # jobs really were taken over


def test_a_stuck_worker_records_the_truth_for_its_other_slots(
    svc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --slots, the job whose stuck thread ends the worker is not the only one it ends. Another slot's
    job stuck as well fails with its own reason (not, attempts later, "worker died 3 times"); a third slot's
    healthy job goes back to the queue."""
    from swarmq.worker import runner as runner_module
    from swarmq.worker.attempt import RUNNING, Message
    from swarmq.worker.watch import JobWatch, _Step

    cfg = load_config(write_config(tmp_path, limit=3, conditions={"a": {}}, extra={"max_spread": 100}))
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    first, second, third = queued(svc)
    run = runner(svc, ScriptedGenerator())
    messages = []
    for job_id in (first, second, third):
        with autocommit_connections(svc.sessions)() as conn:
            claimed = jobs.claim(conn, job_id, run.identity.owner, 60, 3, model_key="stand-in.gguf")
        assert claimed is not None
        msg = Message.of([claimed])
        msg.states[job_id] = RUNNING
        msg.watch = JobWatch(lambda: True, 60, lambda why: None, stuck_seconds=5)
        messages.append(msg)
    # The second slot's generation is as stuck as the first's (past its deadline and the grace); the third
    # generates normally.
    messages[1].watch._step = _Step(1, "generation", 2.0, time.monotonic() - 60, None)  # type: ignore[union-attr]
    messages[2].watch._step = _Step(1, "generation", 600.0, time.monotonic() + 600, None)  # type: ignore[union-attr]
    run._messages.extend(messages)
    exits: list[str] = []
    monkeypatch.setattr(runner_module, "hard_exit", lambda code, line: exits.append(line))
    run._stuck(messages[0], "generation timed out after 1 s and did not stop")
    got = {int(j): (s, e) for j, s, e in rows(svc, "SELECT id, status, error FROM jobs")}
    assert got[first] == ("failed", "generation timed out after 1 s and did not stop")
    assert got[second] == ("failed", "generation timed out after 2 s and did not stop")
    assert got[third] == ("queued", None)
    assert len(exits) == 1 and f"job {first},{second}:" in exits[0]
