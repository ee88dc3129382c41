"""Running jobs that lose their worker: given back (graceful shutdown), queued again once their lease
expired, or failed once they ran out of attempts."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, func, update
from sqlalchemy.orm import Session

from swarmq.queue.jobs.ends import record_failures
from swarmq.queue.jobs.tables import EXPERIMENTS, JOBS, Publishable, expired, movable, out_of_attempts, target
from swarmq.states import QUEUED_IN, JobAction


def _requeue(session: Session, action: JobAction, *where: ColumnElement[bool]) -> Publishable:
    """Running jobs matching ``where`` go back to the queue, or to paused or cancelled when their experiment
    is (`states.QUEUED_IN`); (job id, model key) of each queued one, to publish again."""
    queued = target(action)
    rows = session.execute(
        update(JOBS)
        .where(movable(action), *where, JOBS.c.experiment_id == EXPERIMENTS.c.id)
        .values(
            status=case(dict(QUEUED_IN), value=EXPERIMENTS.c.state, else_=queued),
            lease_owner=None,
            lease_expires_at=None,
            published_at=func.now(),
        )
        .returning(JOBS.c.id, JOBS.c.model_key, JOBS.c.status)
    ).all()
    return [(int(j), str(k)) for j, k, status in rows if status == queued]


def give_back(session: Session, job_id: int, owner: str) -> str | None:
    """Queue a running job of ours again (`JobAction.GIVE_BACK`: graceful shutdown past the grace period); its
    model key, for publishing it again, or None when it was not ours any more."""
    held = and_(JOBS.c.id == job_id, JOBS.c.lease_owner == owner)
    requeued = _requeue(session, JobAction.GIVE_BACK, held)
    session.commit()
    return requeued[0][1] if requeued else None


def requeue_expired(session: Session) -> Publishable:
    """Expired leases (their worker died: `JobAction.REQUEUE`): queued again. Returns (job id, model key) to
    publish. Run after `fail_exhausted`, which takes out the jobs out of attempts. The caller commits."""
    return _requeue(session, JobAction.REQUEUE, expired())


def fail_exhausted(session: Session, max_attempts: int) -> list[int]:
    """Expired leases of jobs out of attempts (their worker died each time: `JobAction.EXHAUST`): failed,
    with the reason and a failure outcome. The caller commits."""
    reason = func.concat(
        "worker died ", JOBS.c.attempts, " times while running this job (max_attempts reached)"
    )
    rows = session.execute(
        update(JOBS)
        .where(movable(JobAction.EXHAUST), expired(), out_of_attempts(max_attempts))
        .values(
            status=target(JobAction.EXHAUST),
            error=reason,
            finished_at=func.now(),
            lease_expires_at=None,  # lease_owner stays: who held it last
        )
        .returning(JOBS.c.id)
    ).all()
    failed = [int(r[0]) for r in rows]
    record_failures(session, failed)
    return failed
