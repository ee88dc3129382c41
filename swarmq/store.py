"""Job ownership and outcomes in Postgres: claim with a lease, renew, finish exactly once, release, reap.

The jobs table is the truth; the broker only carries job ids. Every state change is one guarded UPDATE,
so a second delivery of a job that is leased or done does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from swarmq.schema import Experiment, Job, Outcome


@dataclass(frozen=True)
class StreamRef:
    experiment_id: int
    condition: str
    replicate: int


def claim(session: Session, job_id: int, owner: str, lease_seconds: float) -> Job | None:
    """Take the job if it is queued (or its lease expired); None means another worker has it or it is over."""
    row = session.execute(
        text(
            """
            UPDATE jobs SET status = 'running', lease_owner = :owner, attempts = attempts + 1,
                   lease_expires_at = now() + make_interval(secs => :lease), started_at = now(), error = NULL
            WHERE id = :id AND (status = 'queued' OR (status = 'running' AND lease_expires_at < now()))
            RETURNING id
            """
        ),
        {"id": job_id, "owner": owner, "lease": lease_seconds},
    ).first()
    session.commit()
    return session.get(Job, job_id, populate_existing=True) if row else None


def renew(session: Session, job_id: int, owner: str, lease_seconds: float) -> bool:
    """Heartbeat: extend our lease; False if the job is no longer ours."""
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
        pg_insert(Outcome).values(job_id=job_id, **outcome).on_conflict_do_nothing(index_elements=["job_id"])
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


def stream_outcomes(session: Session, stream: StreamRef) -> list[tuple[Job, Outcome]]:
    """A stream's outcomes in the order their updates were made (outcome id), for rebuilding its state."""
    rows = session.execute(
        select(Job, Outcome)
        .join(Outcome, Outcome.job_id == Job.id)
        .where(
            Job.experiment_id == stream.experiment_id,
            Job.condition == stream.condition,
            Job.replicate == stream.replicate,
        )
        .order_by(Outcome.id)
    ).all()
    return [(j, o) for j, o in rows]


def unapplied_outcomes(session: Session, stream: StreamRef) -> list[tuple[Job, Outcome]]:
    return [(j, o) for j, o in stream_outcomes(session, stream) if not o.update_applied]


def mark_applied(session: Session, outcome_ids: list[int], staleness: dict[int, int] | None = None) -> None:
    if not outcome_ids:
        return
    for oid in outcome_ids:
        values: dict[str, Any] = {"id": oid}
        sql = "UPDATE outcomes SET update_applied = true"
        if staleness and oid in staleness:
            sql += ", staleness = :s"
            values["s"] = staleness[oid]
        session.execute(text(sql + " WHERE id = :id"), values)
    session.commit()
