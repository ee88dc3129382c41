"""The job state machine on real Postgres: every (status, action) pair of `states.TRANSITIONS` through the
real statement of `queue.jobs`, the refused pairs included (they leave the row exactly as it was), each
guard that refuses a move the status allows, and no status spelled as a bare string in swarmq/queue."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import CheckConstraint, text
from sqlalchemy.orm import Session

from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.queue import jobs
from swarmq.queue.broker import make_app
from swarmq.queue.jobs import moves
from swarmq.queue.producer import enqueue
from swarmq.states import (
    HELD,
    INITIAL,
    OPEN,
    QUEUED_IN,
    TRANSITIONS,
    ExperimentState,
    JobAction,
    JobStatus,
    next_status,
    ordered,
)
from swarmq.store.schema import Experiment, Job
from tests.conftest import ROOT
from tests.helpers import write_config
from tests.test_job_path import OUTCOME

HOLDER, OTHER = "w/1", "w/2"
MAX_ATTEMPTS = 3
Act = Callable[[Session, int, int], object]
"""An action's real statement, given a session, the experiment id and the job id."""


def _commit(session: Session, result: object) -> object:
    session.commit()
    return result


ACTS: dict[JobAction, Act] = {
    JobAction.RELEASE: lambda s, e, j: jobs.release(s, e, {"a": None}, 4),
    JobAction.CLAIM: lambda s, e, j: jobs.claim(s, j, OTHER, 60, MAX_ATTEMPTS),
    JobAction.RENEW: lambda s, e, j: jobs.renew(s, [j], HOLDER, 60),
    JobAction.FINISH: lambda s, e, j: jobs.finish(s, j, HOLDER, OUTCOME),
    JobAction.FAIL: lambda s, e, j: jobs.fail(s, j, HOLDER, "boom"),
    JobAction.EXHAUST: lambda s, e, j: _commit(s, jobs.fail_exhausted(s, 1)),
    JobAction.REQUEUE: lambda s, e, j: _commit(s, jobs.requeue_expired(s)),
    JobAction.GIVE_BACK: lambda s, e, j: jobs.give_back(s, j, HOLDER),
    JobAction.PAUSE: lambda s, e, j: _commit(s, moves.move(s, e, JobAction.PAUSE)),
    JobAction.RESUME: lambda s, e, j: _commit(s, moves.move(s, e, JobAction.RESUME)),
    JobAction.CANCEL: lambda s, e, j: _commit(s, moves.move(s, e, JobAction.CANCEL)),
    JobAction.RETRY: lambda s, e, j: _commit(s, moves.retry(s, e)),
}
"""Each with the guards that let a job in a source status move: the holder acts (HOLDER holds every lease
here), the lease has expired, one attempt is used (out of attempts for EXHAUST's max of 1, not for the
claim's MAX_ATTEMPTS), and the job has no outcome (RETRY: it never reached an agent)."""

ROW = "SELECT status, lease_owner, lease_expires_at, attempts, error, started_at, finished_at, published_at"


def _one_job(svc: Any, tmp_path: Path) -> tuple[int, int]:
    """An experiment of one job (its id, the job's id), enqueued the real way."""
    cfg = load_config(write_config(tmp_path, limit=1, conditions={"a": {}}))
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    with svc.sessions() as session:
        exp_id, job_id = session.execute(text("SELECT experiment_id, id FROM jobs")).one()
    return int(exp_id), int(job_id)


def _set(svc: Any, exp_id: int, job_id: int, status: JobStatus, state: ExperimentState, **row: Any) -> None:
    """The job in ``status`` with an expired lease of HOLDER's and one attempt used, no outcome, and its
    experiment in ``state``; ``row`` overrides columns."""
    values = {
        "s": status,
        "owner": HOLDER,
        "expires": "-1 minute",
        "attempts": 1,
        "e": exp_id,
        "j": job_id,
        "state": state,
    }
    values.update(row)
    with svc.sessions() as session:
        session.execute(text("DELETE FROM outcomes WHERE job_id = :j"), values)
        session.execute(text("UPDATE experiments SET state = :state WHERE id = :e"), values)
        session.execute(
            text(
                "UPDATE jobs SET status = :s, lease_owner = :owner, attempts = :attempts, error = NULL, "
                "lease_expires_at = now() + CAST(:expires AS interval), finished_at = NULL WHERE id = :j"
            ),
            values,
        )
        session.commit()


def _row(svc: Any, job_id: int) -> tuple[Any, ...]:
    with svc.sessions() as session:
        return tuple(session.execute(text(f"{ROW} FROM jobs WHERE id = :j"), {"j": job_id}).one())


def _outcome(svc: Any, job_id: int) -> bool:
    with svc.sessions() as session:
        return bool(
            session.execute(text("SELECT count(*) FROM outcomes WHERE job_id = :j"), {"j": job_id}).scalar()
        )


def _act(svc: Any, action: JobAction, exp_id: int, job_id: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The job's row before and after ``action``."""
    before = _row(svc, job_id)
    with svc.sessions() as session:
        ACTS[action](session, exp_id, job_id)
    return before, _row(svc, job_id)


def test_the_table_is_complete_and_consistent() -> None:
    assert set(TRANSITIONS) == set(JobAction) == set(ACTS)
    reached = {INITIAL} | {t.target for t in TRANSITIONS.values()} | set(QUEUED_IN.values())
    assert reached == set(JobStatus)
    assert TRANSITIONS[JobAction.CANCEL].sources == HELD
    for action, move in TRANSITIONS.items():
        assert move.sources, action
        assert not (move.follows_experiment and move.target != QUEUED_IN[ExperimentState.ACTIVE]), action
        for status in JobStatus:
            expected = move.target if status in move.sources else None
            assert next_status(status, action) == expected


def test_the_table_names_the_functions_that_move_jobs() -> None:
    for action, move in TRANSITIONS.items():
        for name in move.by.split(", "):
            module, _, function = name.split(" ")[0].rpartition(".")
            assert callable(getattr(importlib.import_module(f"swarmq.{module}"), function)), (action, name)


@pytest.mark.services
def test_the_server_side_functions_exist(svc: Any) -> None:
    named = {m.server_side for m in TRANSITIONS.values()} - {None}
    with svc.sessions() as session:
        found = set(
            session.execute(
                text("SELECT proname FROM pg_proc WHERE proname = ANY(:n)"), {"n": list(named)}
            ).scalars()
        )
    assert found == named == {"swarmq_release", "swarmq_close"}


def _words(sql: str) -> list[str]:
    return re.findall(r"'(\w+)'", sql)


@pytest.mark.services
def test_the_live_constraints_and_partial_indexes_spell_the_enums(svc: Any) -> None:
    """The status CHECK constraints and the partial indexes the migrations built list the states the ORM
    generates from `swarmq.states` (Alembic's comparison of the schema does not look inside them)."""
    checks = [c for t in (Job.__table__, Experiment.__table__) for c in t.constraints]
    orm = {
        **{c.name: str(c.sqltext) for c in checks if isinstance(c, CheckConstraint)},
        **{i.name: str(i.dialect_options["postgresql"]["where"]) for i in Job.__table__.indexes},
    }
    assert _words(orm["experiments_state_check"]) == [s.value for s in ExperimentState]
    assert _words(orm["jobs_status_check"]) == [s.value for s in JobStatus]
    assert _words(orm["ix_jobs_open_position"]) == [s.value for s in ordered(OPEN)]
    with svc.sessions() as session:
        live = dict(
            session.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conname LIKE '%_check' "
                    "UNION ALL SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs'"
                )
            ).all()
        )
    assert {name: _words(live[name]) for name in orm} == {name: _words(sql) for name, sql in orm.items()}


@pytest.mark.services
@pytest.mark.parametrize("action", list(JobAction))
def test_every_status_under_every_action(svc: Any, tmp_path: Path, action: JobAction) -> None:
    """The resulting status of each (status, action), in an active experiment and, where the target follows
    the experiment, in a paused and a cancelled one; a refused pair leaves the row exactly as it was."""
    exp_id, job_id = _one_job(svc, tmp_path)
    states = list(ExperimentState) if TRANSITIONS[action].follows_experiment else [ExperimentState.ACTIVE]
    wrong = []
    for state in states:
        for status in JobStatus:
            _set(svc, exp_id, job_id, status, state)
            before, after = _act(svc, action, exp_id, job_id)
            expected = next_status(status, action, state)
            if expected is None and after != before:
                wrong.append(f"{state}/{status} --{action}--> {after[0]}: refused, yet the row changed")
            if expected is not None and (after[0] != expected or after == before):
                wrong.append(f"{state}/{status} --{action}--> {after[0]}, not {expected} (a move)")
    assert wrong == []


@pytest.mark.services
def test_finishing_writes_the_outcome_with_the_status(svc: Any, tmp_path: Path) -> None:
    """FINISH and FAIL (`swarmq_close`) and EXHAUST close the job and write its outcome in one go."""
    exp_id, job_id = _one_job(svc, tmp_path)
    for action in (JobAction.FINISH, JobAction.FAIL, JobAction.EXHAUST):
        _set(svc, exp_id, job_id, JobStatus.RUNNING, ExperimentState.ACTIVE)
        _act(svc, action, exp_id, job_id)
        assert _outcome(svc, job_id), action


GUARDED: list[tuple[JobAction, JobStatus, dict[str, Any], ExperimentState]] = [
    (JobAction.CLAIM, JobStatus.RUNNING, {"expires": "1 minute"}, ExperimentState.ACTIVE),  # a live lease
    (JobAction.CLAIM, JobStatus.RUNNING, {"attempts": MAX_ATTEMPTS}, ExperimentState.ACTIVE),
    (JobAction.CLAIM, JobStatus.RUNNING, {}, ExperimentState.PAUSED),
    (JobAction.RENEW, JobStatus.RUNNING, {"owner": OTHER}, ExperimentState.ACTIVE),
    (JobAction.FINISH, JobStatus.RUNNING, {"owner": OTHER}, ExperimentState.ACTIVE),
    (JobAction.FAIL, JobStatus.RUNNING, {"owner": OTHER}, ExperimentState.ACTIVE),
    (JobAction.GIVE_BACK, JobStatus.RUNNING, {"owner": OTHER}, ExperimentState.ACTIVE),
    (JobAction.EXHAUST, JobStatus.RUNNING, {"attempts": 0}, ExperimentState.ACTIVE),
    (JobAction.EXHAUST, JobStatus.RUNNING, {"expires": "1 minute"}, ExperimentState.ACTIVE),
    (JobAction.REQUEUE, JobStatus.RUNNING, {"expires": "1 minute"}, ExperimentState.ACTIVE),
    (JobAction.RELEASE, JobStatus.PENDING, {}, ExperimentState.PAUSED),
    (JobAction.RELEASE, JobStatus.PENDING, {}, ExperimentState.CANCELLED),
]
"""A job in a status its action moves, with one guard that does not hold: left as it is."""


@pytest.mark.services
@pytest.mark.parametrize(("action", "status", "row", "state"), GUARDED)
def test_a_guard_that_does_not_hold_refuses_the_move(
    svc: Any,
    tmp_path: Path,
    action: JobAction,
    status: JobStatus,
    row: dict[str, Any],
    state: ExperimentState,
) -> None:
    exp_id, job_id = _one_job(svc, tmp_path)
    _set(svc, exp_id, job_id, status, state, **row)
    before, after = _act(svc, action, exp_id, job_id)
    assert after == before


@pytest.mark.services
def test_retry_leaves_a_failure_that_is_a_result(svc: Any, tmp_path: Path) -> None:
    """A failed job whose agent's outcome is recorded (its generation or scoring failed) is not retried."""
    exp_id, job_id = _one_job(svc, tmp_path)
    _set(svc, exp_id, job_id, JobStatus.RUNNING, ExperimentState.ACTIVE)
    with svc.sessions() as session:
        assert jobs.finish(session, job_id, HOLDER, OUTCOME, status=JobStatus.FAILED, error="timeout")
    before, after = _act(svc, JobAction.RETRY, exp_id, job_id)
    assert after == before and after[0] == JobStatus.FAILED


def test_a_job_ends_done_or_failed() -> None:
    with pytest.raises(ValueError, match="a job ends done or failed, not queued"):
        jobs.Finished(1, {}, JobStatus.QUEUED)


STATUS_WORDS = {s.value for s in JobStatus} | {s.value for s in ExperimentState}


def _literals(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are a state, or hold one as an SQL literal; docstrings aside."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    docstrings |= {  # attribute docstrings: a string statement after an assignment
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            value = node.value
            if value in STATUS_WORDS or any(f"'{w}'" in value for w in STATUS_WORDS):
                found.append((node.lineno, value))
    return found


def test_no_status_is_a_bare_string_in_the_queue_package() -> None:
    """Statuses and experiment states in swarmq/queue are spelled through `swarmq.states`, so the table and
    the statements cannot drift apart."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path in sorted((ROOT / "swarmq" / "queue").rglob("*.py"))
        for line, value in _literals(path)
    ]
    assert found == []


def test_the_literal_check_sees_a_bare_status(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Doc: \'queued\'."""\nX = "running"\nQ = "WHERE status = \'done\'"\n')
    assert _literals(module) == [(2, "running"), (3, "WHERE status = 'done'")]
