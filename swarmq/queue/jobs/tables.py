"""What every job statement is built from: the Core tables, the status guard of an action, and the lease
predicates the claim and the reaper share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, ColumnElement, Connection, Table, bindparam, func, literal, select
from sqlalchemy.orm import Session

from swarmq.states import TRANSITIONS, ExperimentState, JobAction, JobStatus, ordered
from swarmq.store.schema import Experiment, Issue, Job, Outcome

# Core tables, not ORM entities, on the hot path: no identity map or object loading per job.
JOBS: Table = Job.__table__  # type: ignore[assignment]
OUTCOMES: Table = Outcome.__table__  # type: ignore[assignment]
EXPERIMENTS: Table = Experiment.__table__  # type: ignore[assignment]
ISSUES: Table = Issue.__table__  # type: ignore[assignment]
Executor = Session | Connection
"""What the job path's statements run in: a Session, or a Core connection (a worker's, in autocommit)."""
Publishable = list[tuple[int, str]]
"""(job id, model key) pairs, in publish order: what `broker.publish` sends."""


def movable(action: JobAction) -> ColumnElement[bool]:
    """The job's status is one ``action`` moves (`states.TRANSITIONS`); the action's other guards are its
    statement's. A set of statuses is a list of bound values, not an expanding IN: frozen statements
    (`store.frozen`) compile once."""
    status = JOBS.c.status
    sources = ordered(TRANSITIONS[action].sources)
    if len(sources) == 1:
        return status == sources[0]
    return status.in_([literal(s, status.type) for s in sources])


def target(action: JobAction) -> JobStatus:
    """The status ``action`` writes."""
    return TRANSITIONS[action].target


def ids(name: str) -> ColumnElement[Any]:
    """A parameter that is a list of job ids, sent as one bigint array (an index lookup per element)."""
    return bindparam(name, type_=ARRAY(BigInteger, dimensions=1))


def out_of_attempts(max_attempts: int | ColumnElement[int]) -> ColumnElement[bool]:
    """The one rule for a job whose workers keep dying: claimed ``max_attempts`` times, it is not run
    again."""
    return JOBS.c.attempts >= max_attempts


def expired() -> ColumnElement[bool]:
    """The job's lease ran out: its worker died (or stalls past its lease)."""
    return JOBS.c.lease_expires_at < func.now()


def runs() -> ColumnElement[bool]:
    """The job's experiment is active (not paused or cancelled, `lifecycle`)."""
    active = select(EXPERIMENTS.c.id).where(EXPERIMENTS.c.state == ExperimentState.ACTIVE)
    return JOBS.c.experiment_id.in_(active)


def lease(seconds: float | ColumnElement[float]) -> ColumnElement[datetime]:
    """A lease's end: ``seconds`` from now."""
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)
