"""Job ownership and outcomes in Postgres: claim with a lease, renew, finish exactly once, release, reap.

The jobs table is the truth; the broker only carries job ids. Every state change is one guarded UPDATE,
so a second delivery of a job that is leased or done does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from swarmq.schema import Experiment, Job, Outcome


@dataclass(frozen=True)
class StreamRef:
    experiment_id: int
    condition: str
    replicate: int


def relaxed_commit(session: Session) -> None:
    """This transaction may skip waiting for the WAL flush. Only for writes that heal themselves if a
    Postgres crash loses them (a lease, a heartbeat, a release, an applied-mark): never for outcomes."""
    session.execute(text("SET LOCAL synchronous_commit = off"))


# Core tables, not ORM entities, on the hot path: no identity map or object loading per job.
JOBS: Table = Job.__table__  # type: ignore[assignment]
OUTCOMES: Table = Outcome.__table__  # type: ignore[assignment]
Claimed = Row[Any]
"""A claimed job's id, experiment_id, issue_id, condition, replicate, position and attempts."""


def claim(session: Session, job_id: int, owner: str, lease_seconds: float, max_attempts: int = 3) -> Claimed | None:
    """Take the job if it is queued, or its lease expired with attempts to spare, or it is already leased to
    ``owner`` (our own retry after a connection dropped before the reply). None: someone else has it, or
    it is over, or it is out of attempts (the reaper fails it).

    A claim lost in a Postgres crash leaves the job queued, to be delivered again: no need to wait for disk.
    """
    relaxed_commit(session)
    c = JOBS.c
    row = session.execute(
        update(JOBS)
        .where(c.id == job_id)
        .where(
            or_(
                c.status == "queued",
                and_(
                    c.status == "running",
                    or_(c.lease_owner == owner, and_(c.lease_expires_at < func.now(), c.attempts < max_attempts)),
                ),
            )
        )
        .values(
            status="running",
            lease_owner=owner,
            attempts=c.attempts + 1,
            lease_expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds),
            started_at=func.now(),
            error=None,
        )
        .returning(c.id, c.experiment_id, c.issue_id, c.condition, c.replicate, c.position, c.attempts)
    ).first()
    session.commit()
    return row


def renew(session: Session, job_id: int, owner: str, lease_seconds: float) -> bool:
    """Heartbeat: extend our lease; False if the job is no longer ours."""
    relaxed_commit(session)
    n = session.execute(
        text(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease) "
            "WHERE id = :id AND lease_owner = :owner AND status = 'running'"
        ),
        {"id": job_id, "owner": owner, "lease": lease_seconds},
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(n)


def finish(
    session: Session, job_id: int, owner: str, outcome: dict[str, Any], *, status: str = "done",
    error: str | None = None,
) -> bool:  # fmt: skip
    """Write the outcome and close the job (done, or failed with ``error``), atomically.

    False if another delivery already finished it: the unique constraint on outcomes.job_id decides, not
    only this code. An outcome already written by ``owner`` (our own retry after a dropped connection) is ours.
    """
    inserted = session.execute(
        pg_insert(OUTCOMES).values(job_id=job_id, **outcome).on_conflict_do_nothing(index_elements=["job_id"])
    ).rowcount  # type: ignore[attr-defined]
    if not inserted:
        session.rollback()
        mine = session.scalar(select(Outcome.worker).where(Outcome.job_id == job_id)) == owner
        return bool(mine)
    session.execute(
        text(
            "UPDATE jobs SET status = :status, error = :error, finished_at = now(), lease_owner = NULL, "
            "lease_expires_at = NULL WHERE id = :id"
        ),
        {"id": job_id, "status": status, "error": error},
    )
    session.commit()
    return True


def fail(session: Session, job_id: int, reason: str) -> None:
    session.execute(
        text(
            "UPDATE jobs SET status = 'failed', error = :reason, finished_at = now(), lease_owner = NULL, "
            "lease_expires_at = NULL WHERE id = :id AND status <> 'done'"
        ),
        {"id": job_id, "reason": reason},
    )
    session.commit()


def release_job(session: Session, job_id: int, owner: str) -> bool:
    """Give a running job back (graceful shutdown past the grace period): it is queued again."""
    n = session.execute(
        text(
            "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, published_at = now() "
            "WHERE id = :id AND lease_owner = :owner AND status = 'running'"
        ),
        {"id": job_id, "owner": owner},
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(n)


def release_stream(session: Session, stream: StreamRef, limit: int | None) -> list[int]:
    """Queue the stream's next pending jobs so that at most ``limit`` are queued or running (None: all).

    A transaction-scoped advisory lock per stream keeps two workers from releasing past the limit.
    """
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
        {"k": f"stream/{stream.experiment_id}/{stream.condition}/{stream.replicate}"},
    )
    params = {"e": stream.experiment_id, "c": stream.condition, "r": stream.replicate}
    where = "experiment_id = :e AND condition = :c AND replicate = :r"
    room: int | None = None
    if limit is not None:
        active = session.execute(
            text(f"SELECT count(*) FROM jobs WHERE {where} AND status IN ('queued', 'running')"), params
        ).scalar_one()
        room = max(0, limit - int(active))
        if room == 0:
            session.commit()
            return []
    ids = [
        r[0]
        for r in session.execute(
            text(
                f"""
                UPDATE jobs SET status = 'queued', published_at = now()
                WHERE id IN (SELECT id FROM jobs WHERE {where} AND status = 'pending'
                             ORDER BY position LIMIT :room)
                RETURNING id
                """
            ),
            {**params, "room": room},
        )
    ]
    session.commit()
    return ids


def experiment_for_job(session: Session, job: Job) -> Experiment:
    exp = session.get(Experiment, job.experiment_id)
    assert exp is not None  # jobs cascade with their experiment
    return exp


def stream_outcomes(session: Session, stream: StreamRef, *, unapplied_only: bool = False) -> list[tuple[Job, Outcome]]:
    """A stream's outcomes in the order their updates were made (outcome id), for rebuilding its state;
    with ``unapplied_only``, just those whose swarm update is still to be applied."""
    query = (
        select(Job, Outcome)
        .join(Outcome, Outcome.job_id == Job.id)
        .where(
            Job.experiment_id == stream.experiment_id,
            Job.condition == stream.condition,
            Job.replicate == stream.replicate,
        )
        .order_by(Outcome.id)
    )
    if unapplied_only:
        query = query.where(Outcome.update_applied.is_(False))
    return [(j, o) for j, o in session.execute(query).all()]


def has_unapplied(session: Session, stream: StreamRef) -> bool:
    """Cheap check (a partial index) before fetching a stream's half-applied updates."""
    return (
        session.execute(
            text(
                "SELECT 1 FROM outcomes o JOIN jobs j ON j.id = o.job_id WHERE NOT o.update_applied "
                "AND j.experiment_id = :e AND j.condition = :c AND j.replicate = :r LIMIT 1"
            ),
            {"e": stream.experiment_id, "c": stream.condition, "r": stream.replicate},
        ).first()
        is not None
    )


def mark_applied(session: Session, job_id: int, staleness: int | None = None) -> None:
    """Record in Postgres that the job's swarm update is in Redis (and, when it was applied now, how stale
    the job's view was). Lost in a crash, the mark is redone: the update itself is idempotent in Redis."""
    relaxed_commit(session)
    session.execute(
        text("UPDATE outcomes SET update_applied = true, staleness = coalesce(:s, staleness) WHERE job_id = :j"),
        {"j": job_id, "s": staleness},
    )
    session.commit()
