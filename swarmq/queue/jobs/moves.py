"""Experiment-wide moves of jobs (`queue.lifecycle` runs them under the experiment's lock): pause, resume,
cancel, and the retry of failed jobs that never reached an agent."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, any_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from swarmq.queue.jobs.tables import JOBS, OUTCOMES, Publishable, ids, movable, target
from swarmq.states import JobAction, JobStatus

EXPERIMENT_WIDE = (JobAction.PAUSE, JobAction.RESUME, JobAction.CANCEL)
"""The actions `move` runs."""


def move(session: Session, experiment_id: int, action: JobAction) -> Publishable:
    """The experiment's jobs that ``action`` moves get its target status (`states.TRANSITIONS`); (id, model
    key) of each, in publish order. The caller holds the experiment's lock and commits."""
    if action not in EXPERIMENT_WIDE:
        raise ValueError(f"move: {action} is not an experiment-wide action; these are {EXPERIMENT_WIDE}")
    to = target(action)
    values: dict[str, Any] = {"status": to}
    if to == JobStatus.QUEUED:
        values["published_at"] = func.now()
    rows = session.execute(
        update(JOBS)
        .where(JOBS.c.experiment_id == experiment_id, movable(action))
        .values(values)
        .returning(JOBS.c.id, JOBS.c.model_key, JOBS.c.seq)
    ).all()
    return [(int(i), str(k)) for i, k, _ in sorted(rows, key=lambda r: r[2])]


def retryable() -> ColumnElement[bool]:
    """A failed job that never reached an agent (`JobAction.RETRY`), over jobs LEFT JOIN outcomes: its worker
    died ``max_attempts`` times or an unexpected error ended it (no outcome, or a failure outcome without an
    agent, `store.outcomes.failure_record`). Nothing of it is in the swarm state, so it can run again. A job
    whose generation or scoring failed (a prompt over n_ctx, a timeout) has an agent's outcome, applied to the
    swarm's history: that failure is a result, and stays."""
    return movable(JobAction.RETRY) & or_(OUTCOMES.c.id.is_(None), OUTCOMES.c.agent_id.is_(None))


class Reset(NamedTuple):
    """A job `retry` made pending again, and its stream."""

    id: int
    condition: str
    replicate: int


def retry(session: Session, experiment_id: int) -> list[Reset]:
    """The experiment's `retryable` jobs become pending with fresh attempts, their failure outcomes removed.
    The caller holds the experiment's lock, commits, and rebuilds the streams' swarm state."""
    c = JOBS.c
    rows = session.execute(
        select(c.id, c.condition, c.replicate)
        .select_from(JOBS.outerjoin(OUTCOMES, OUTCOMES.c.job_id == c.id))
        .where(c.experiment_id == experiment_id, retryable())
    ).all()
    reset = [Reset(int(i), str(cond), int(r)) for i, cond, r in rows]
    params = {"job_ids": [r.id for r in reset]}
    session.execute(delete(OUTCOMES).where(OUTCOMES.c.job_id == any_(ids("job_ids"))), params)
    session.execute(
        update(JOBS)
        .where(c.id == any_(ids("job_ids")), movable(JobAction.RETRY))
        .values(
            status=target(JobAction.RETRY),
            attempts=0,
            error=None,
            lease_owner=None,
            lease_expires_at=None,
            started_at=None,
            finished_at=None,
        ),
        params,
    )
    return reset


def count(session: Session, experiment_id: int, status: JobStatus) -> int:
    """The experiment's jobs in ``status``."""
    query = (
        select(func.count())
        .select_from(JOBS)
        .where(JOBS.c.experiment_id == experiment_id, JOBS.c.status == status)
    )
    return int(session.execute(query).scalar_one())
