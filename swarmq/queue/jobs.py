"""The jobs table's state machine: every transition of a job, and nothing else writes `jobs.status`.

    pending ──release──▶ queued ──claim──▶ running ──finish──▶ done | failed
                          ▲                   │
                          └─requeue_expired───┤ (lease expired, attempts left)
                          └─give_back─────────┘ (graceful shutdown past its grace period)
    running ──fail_exhausted──▶ failed (lease expired, out of attempts)      failed ──reset_failed──▶ pending

The jobs table is the truth; the broker only carries job ids. Every transition is one guarded UPDATE, so a
second delivery of a job that is leased or done does nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, func, not_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from swarmq import keys
from swarmq.store.outcomes import StreamId, relaxed_commit
from swarmq.store.schema import Experiment, Job, Outcome

# Core tables, not ORM entities, on the hot path: no identity map or object loading per job.
JOBS: Table = Job.__table__  # type: ignore[assignment]
OUTCOMES: Table = Outcome.__table__  # type: ignore[assignment]
EXPERIMENTS: Table = Experiment.__table__  # type: ignore[assignment]
Claimed = Row[Any]
"""A claimed job's id, experiment_id, issue_id, condition, replicate, position and attempts."""


def _out_of_attempts(max_attempts: int) -> ColumnElement[bool]:
    """The one rule for a job whose workers keep dying: claimed ``max_attempts`` times, it is not run again."""
    return JOBS.c.attempts >= max_attempts


def _expired() -> ColumnElement[bool]:
    return and_(JOBS.c.status == "running", JOBS.c.lease_expires_at < func.now())


def _lease(seconds: float) -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def claim(session: Session, job_id: int, owner: str, lease_seconds: float, max_attempts: int) -> Claimed | None:
    """Take the job if it is queued, or its lease expired with attempts to spare, or it is already leased to
    ``owner`` (our own retry after a connection dropped before the reply). None: someone else has it, or
    it is over, or it is out of attempts (the reaper fails it).

    The claim is durable (a normal commit): a claim lost in a Postgres crash would put the job back in the
    queue while its worker still runs it, and the work would run twice.
    """
    c = JOBS.c
    mine = and_(c.status == "running", c.lease_owner == owner)
    row = session.execute(
        update(JOBS)
        .where(c.id == job_id)
        .where(or_(c.status == "queued", mine, and_(_expired(), not_(_out_of_attempts(max_attempts)))))
        .values(
            status="running",
            lease_owner=owner,
            attempts=c.attempts + 1,
            lease_expires_at=_lease(lease_seconds),
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
    c = JOBS.c
    n = session.execute(
        update(JOBS)
        .where(c.id == job_id, c.lease_owner == owner, c.status == "running")
        .values(lease_expires_at=_lease(lease_seconds))
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(n)


def _close(status: str, error: Any) -> dict[str, Any]:
    """A job's closing values. ``lease_owner`` stays: it records who finished the job, and lets that worker
    recognise its own commit when it retries after a dropped connection."""
    return {"status": status, "error": error, "finished_at": func.now(), "lease_expires_at": None}


def _held(job_id: int, owner: str) -> ColumnElement[bool]:
    """Only the lease holder writes a job's end: a worker that lost its lease never overwrites another's work."""
    return and_(JOBS.c.id == job_id, JOBS.c.status == "running", JOBS.c.lease_owner == owner)


def _finished_by(session: Session, job_id: int, owner: str) -> bool:
    """The job was closed by ``owner`` with an outcome (`finish`, not `fail`): our own commit, retried."""
    row = session.execute(
        select(JOBS.c.status, JOBS.c.lease_owner, OUTCOMES.c.id)
        .join(OUTCOMES, OUTCOMES.c.job_id == JOBS.c.id, isouter=True)
        .where(JOBS.c.id == job_id)
    ).first()
    return row is not None and row.status in ("done", "failed") and row.lease_owner == owner and row.id is not None


def finish(session: Session, job_id: int, owner: str, outcome: dict[str, Any], *, status: str = "done",
           error: str | None = None) -> bool:  # fmt: skip
    """Close the job (done, or failed with ``error``) and write its outcome, atomically, while ``owner``
    holds the lease. False when it does not (the lease expired or went to another worker: the caller drops
    its result), unless the job was already closed by ``owner`` itself (our retry after a dropped connection).
    The unique constraint on outcomes.job_id keeps one outcome per job whatever this code does."""
    closed = session.execute(update(JOBS).where(_held(job_id, owner)).values(**_close(status, error))).rowcount  # type: ignore[attr-defined]
    if not closed:
        session.rollback()
        return _finished_by(session, job_id, owner)
    session.execute(pg_insert(OUTCOMES).values(job_id=job_id, **outcome))
    session.commit()
    return True


def fail(session: Session, job_id: int, owner: str, reason: str) -> bool:
    """Fail a job without an outcome (an unexpected error while running it), while ``owner`` holds it."""
    n = session.execute(update(JOBS).where(_held(job_id, owner)).values(**_close("failed", reason))).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(n)


def _requeue(session: Session, *where: ColumnElement[bool]) -> list[tuple[int, str]]:
    """Running jobs matching ``where`` go back to the queue; (job id, model key) of each, to publish again."""
    rows = session.execute(
        update(JOBS)
        .where(*where, JOBS.c.experiment_id == EXPERIMENTS.c.id)
        .values(status="queued", lease_owner=None, lease_expires_at=None, published_at=func.now())
        .returning(JOBS.c.id, EXPERIMENTS.c.model_key)
    ).all()
    return [(int(j), str(k)) for j, k in rows]


def give_back(session: Session, job_id: int, owner: str) -> str | None:
    """Queue a running job of ours again (graceful shutdown past the grace period); its model key, for
    publishing it again, or None when it was not ours any more."""
    requeued = _requeue(session, _held(job_id, owner))
    session.commit()
    return requeued[0][1] if requeued else None


def fail_exhausted(session: Session, max_attempts: int) -> list[int]:
    """Expired leases of jobs out of attempts (their worker died each time): failed, with the reason."""
    reason = func.concat("worker died ", JOBS.c.attempts, " times while running this job (max_attempts reached)")
    rows = session.execute(
        update(JOBS).where(_expired(), _out_of_attempts(max_attempts)).values(**_close("failed", reason))
        .returning(JOBS.c.id)
    ).all()  # fmt: skip
    return [int(r[0]) for r in rows]


def requeue_expired(session: Session) -> list[tuple[int, str]]:
    """Expired leases (their worker died): queued again. Returns (job id, model key) to publish."""
    return _requeue(session, _expired())


def release(session: Session, stream: StreamId, limit: int | None) -> list[int]:
    """Queue the stream's next pending jobs so that at most ``limit`` are queued or running (None: all).

    A transaction-scoped advisory lock per stream keeps two workers from releasing past the limit.
    """
    lock = keys.stream_lock(stream.experiment_id, stream.condition, stream.replicate)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": lock})
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
    ids = list(
        session.execute(
            text(
                f"UPDATE jobs SET status = 'queued', published_at = now() WHERE id IN (SELECT id FROM jobs "
                f"WHERE {where} AND status = 'pending' ORDER BY position LIMIT :room) RETURNING id"
            ),
            {**params, "room": room},
        ).scalars()
    )
    session.commit()
    return ids


def reset_failed(session: Session, experiment_id: int) -> None:
    """Resume: jobs that failed without an outcome (poison jobs) get a fresh set of attempts, as pending."""
    session.execute(
        text(
            "UPDATE jobs SET status = 'pending', attempts = 0, error = NULL WHERE experiment_id = :e "
            "AND status = 'failed' AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.job_id = jobs.id)"
        ),
        {"e": experiment_id},
    )
    session.commit()


def mark_published(session: Session, job_ids: list[int]) -> None:
    """Queued jobs sent to the broker again (they were missing from it)."""
    session.execute(update(JOBS).where(JOBS.c.id.in_(job_ids)).values(published_at=func.now()))
    session.commit()


def queued_ids(session: Session, experiment_id: int) -> list[int]:
    """An experiment's queued jobs in publish order."""
    q = select(Job.id).where(Job.experiment_id == experiment_id, Job.status == "queued").order_by(Job.seq)
    return list(session.execute(q).scalars())


def unfinished_models(session: Session) -> list[tuple[dict[str, Any], str]]:
    """(model config, model key) of every experiment with unfinished jobs, oldest experiment first."""
    rows = session.execute(
        text(
            "SELECT e.config->'model', e.model_key FROM experiments e WHERE EXISTS (SELECT 1 FROM jobs j "
            "WHERE j.experiment_id = e.id AND j.status IN ('pending', 'queued', 'running')) ORDER BY e.created_at"
        )
    ).all()
    return [(dict(r[0]), str(r[1])) for r in rows]


def unfinished_count(session: Session, model_key: str) -> int:
    """Jobs of a model's experiments that are not done or failed (a burst worker stops at 0)."""
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
                "WHERE e.model_key = :k AND j.status IN ('pending', 'queued', 'running')"
            ),
            {"k": model_key},
        ).scalar_one()
    )
