"""Releasing an experiment's next pending jobs (`JobAction.RELEASE`), and the queued jobs to publish."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Boolean, Integer, Text, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement

from swarmq import keys
from swarmq.queue.jobs.tables import JOBS, Executor, Publishable
from swarmq.states import JobStatus
from swarmq.store.frozen import frozen
from swarmq.store.outcomes import AppliedMark, applied_mark, applied_params


def release(
    session: Executor,
    experiment_id: int,
    limits: Mapping[str, int | None],
    window: int,
    *,
    relaxed: bool = False,
    applied: Sequence[AppliedMark] = (),
) -> Publishable:
    """Queue the experiment's next pending jobs; returns them to publish, in publish order.

    A pending job is released when (1) its position is below the lowest position still open in the
    experiment (pending, queued or running, any stream) plus ``window``, and (2) its stream has room under its
    condition's in-flight limit (``limits``; None: unlimited). Rule 1 keeps every stream, relaxed ones
    included, within ``window`` positions of the slowest: a run stopped at any moment has compared the
    conditions on nearly the same issues. The lowest open position only rises, so a released job never falls
    outside the window (until `lifecycle.retry_failed` reopens old positions). A paused or cancelled
    experiment releases nothing.

    The rule is the server-side ``swarmq_release``: one statement, whose own statements take the experiment's
    advisory lock (two workers never release past a limit) and then read the jobs, so it sees every release
    before it; the index ``ix_jobs_open_position`` keeps it to short index ranges. ``relaxed``: commit without
    waiting for the WAL flush (a worker's release: the reaper redoes a lost one). ``applied``: a worker's
    applied-marks of its last jobs' swarm updates (`store.outcomes.applied_mark`), written in the same
    statement, so a message's end costs one round trip after its outcomes.
    """
    rows = _release_statement(bool(applied)).run(
        session,
        experiment_id=experiment_id,
        lock_key=keys.release_lock(experiment_id),
        limits=dict(limits),
        window=window,
        relaxed=relaxed,
        **(applied_params(applied) if applied else {}),
    )
    session.commit()
    return [(int(job_id), str(key)) for job_id, key, _ in sorted(rows, key=lambda r: r[2])]


@frozen
def _release_statement(with_mark: bool) -> ClauseElement:
    """``swarmq_release`` (`release`), and ``with_mark``: the applied-mark's UPDATE as a CTE of the same
    statement (its parameters: `store.outcomes.applied_params`)."""
    released = func.swarmq_release(
        bindparam("experiment_id", type_=Integer),
        bindparam("lock_key", type_=Text),
        bindparam("limits", type_=JSONB),
        bindparam("window", type_=Integer),
        bindparam("relaxed", type_=Boolean),
    ).table_valued("job_id", "model_key", "seq")
    query = select(released.c.job_id, released.c.model_key, released.c.seq)
    if with_mark:
        query = query.add_cte(applied_mark().cte("mark"))
    return query


def mark_published(session: Session, job_ids: list[int]) -> None:
    """Queued jobs sent to the broker again (they were missing from it)."""
    session.execute(update(JOBS).where(JOBS.c.id.in_(job_ids)).values(published_at=func.now()))
    session.commit()


def queued_jobs(session: Executor, experiment_id: int) -> Publishable:
    """An experiment's queued jobs in publish order."""
    c = JOBS.c
    q = (
        select(c.id, c.model_key)
        .where(c.experiment_id == experiment_id, c.status == JobStatus.QUEUED)
        .order_by(c.seq)
    )
    return [(int(i), str(k)) for i, k in session.execute(q).all()]
