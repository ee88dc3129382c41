"""Outcome rows as the swarm sees them: a stream's outcomes in update order, the ones whose swarm update is
not applied yet, and the mark that it is.

An outcome is written with its job's closing transition (`queue.jobs.finish`); its swarm update follows
in Redis. These are the reads and the one write that keep the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Exists,
    Integer,
    Table,
    Update,
    any_,
    bindparam,
    exists,
    func,
    literal_column,
    not_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from swarmq.store.schema import Job, Outcome


class StreamId(Protocol):
    """Whatever names a stream (swarm.state.Stream); only its Postgres identity is read here."""

    @property
    def experiment_id(self) -> int: ...
    @property
    def condition(self) -> str: ...
    @property
    def replicate(self) -> int: ...


FAILED = "skipped"
"""``score_status`` of an outcome with nothing to score: its generation failed, or the job failed as a
whole."""


def failure_record(reason: str, *, task_type: str, rule: str, worker: str, model_name: str) -> dict[str, Any]:
    """The outcome of a job that ended without one of its own (its worker died ``max_attempts`` times, or an
    unexpected error): a failure with its reason and no agent. Strict streams keep no gap, and every
    denominator counts the job (as a failure, like a prompt longer than the context), while per-agent
    statistics skip it."""
    return {
        "completion": "",
        "finish_reason": "error",
        "worker": worker,
        "model_name": model_name,
        "model_sha256": "",
        "llama_cpp_version": "",
        "prompt": "",
        "prompt_sha256": "",
        "sampling": {},
        "error": reason,
        "agent_id": None,
        "task_type": task_type,
        "example_ids": [],
        "success": False,
        "success_rule": rule,
        "score_status": FAILED,
        "score_detail": {},
    }


def relaxed_commit(session: Session) -> None:
    """This transaction may skip waiting for the WAL flush. Only for writes that heal themselves if a
    Postgres crash loses them (a lease, a heartbeat, a release, an applied-mark): never for outcomes."""
    session.execute(text("SET LOCAL synchronous_commit = off"))


def stream_outcomes(
    session: Session, stream: StreamId, *, unapplied_only: bool = False
) -> list[tuple[Job, Outcome]]:
    """A stream's outcomes in the order their updates were applied in Redis (then, for those not applied yet,
    in commit order), for rebuilding its state; with ``unapplied_only``, just those still to be applied."""
    query = (
        select(Job, Outcome)
        .join(Outcome, Outcome.job_id == Job.id)
        .where(
            Job.experiment_id == stream.experiment_id,
            Job.condition == stream.condition,
            Job.replicate == stream.replicate,
        )
        .order_by(Outcome.applied_version.asc().nulls_last(), Outcome.id)
    )
    if unapplied_only:
        query = query.where(Outcome.update_applied.is_(False))
    return [(j, o) for j, o in session.execute(query).all()]


def latest_successes(session: Session, experiment_id: int, per_agent: int) -> list[tuple[Job, Outcome]]:
    """Each (stream, agent)'s last ``per_agent`` successful outcomes with an agent, of sample 0 (the only
    sample that feeds the swarm), oldest first, in the order their updates were applied (as
    `stream_outcomes`): all that an agent's final buffer can hold, read without the rest of the experiment's
    outcomes."""
    ranked = (
        select(
            Outcome.id,
            func.row_number()
            .over(
                partition_by=(Job.condition, Job.replicate, Outcome.agent_id),
                order_by=(Outcome.applied_version.desc().nulls_first(), Outcome.id.desc()),
            )
            .label("k"),
        )
        .join(Job, Job.id == Outcome.job_id)
        .where(
            Job.experiment_id == experiment_id,
            Job.sample == 0,  # the only sample that feeds the swarm
            Outcome.success,
            Outcome.agent_id.is_not(None),
        )
        .subquery()
    )
    query = (
        select(Job, Outcome)
        .join(Outcome, Outcome.job_id == Job.id)
        .join(ranked, ranked.c.id == Outcome.id)
        .where(ranked.c.k <= per_agent)
        .order_by(Job.condition, Job.replicate, Outcome.applied_version.asc().nulls_last(), Outcome.id)
    )
    return [(j, o) for j, o in session.execute(query).all()]


def unapplied_streams(
    session: Session, *, older_than_seconds: float | None = None, model_key: str | None = None
) -> list[tuple[int, str, int]]:
    """Streams (experiment id, condition, replicate) holding outcomes whose swarm update is not applied:
    written more than ``older_than_seconds`` ago, of one model's experiments (the reaper's and a stopping
    worker's sweep; a worker learns it of its own job's stream from the claim, `unapplied_in_stream`)."""
    where, params = ["NOT o.update_applied"], dict[str, Any]()
    if older_than_seconds is not None:
        where.append("o.created_at < now() - make_interval(secs => :g)")
        params["g"] = older_than_seconds
    if model_key is not None:
        where.append("j.model_key = :k")
        params["k"] = model_key
    sql = (
        "SELECT DISTINCT j.experiment_id, j.condition, j.replicate "
        "FROM outcomes o JOIN jobs j ON j.id = o.job_id "
        f"WHERE {' AND '.join(where)}"
    )
    return [(int(e), str(c), int(r)) for e, c, r in session.execute(text(sql), params).all()]


@dataclass(frozen=True)
class AppliedMark:
    """A job's swarm update is in Redis: when it was applied now, how stale the job's view was and which state
    version it produced (None when it was already there: a duplicate)."""

    job_id: int
    staleness: int | None = None
    version: int | None = None


def applied_mark() -> Update:
    """The UPDATE that records `AppliedMark`s, one or several (a batch's: `queue.jobs.release`), bound by
    `applied_params` as three parallel arrays; the outcome columns it sets are outside the aggregates'
    trigger."""
    table: Table = Outcome.__table__  # type: ignore[assignment]
    o = table.c
    marks = (
        func.unnest(
            bindparam("mark_jobs", type_=ARRAY(BigInteger, dimensions=1)),
            bindparam("mark_staleness", type_=ARRAY(Integer, dimensions=1)),
            bindparam("mark_versions", type_=ARRAY(Integer, dimensions=1)),
        )
        .table_valued("job", "staleness", "version")
        .render_derived(name="marks")
    )
    return (
        update(table)
        .where(o.job_id == marks.c.job)
        .values(
            update_applied=True,
            staleness=func.coalesce(marks.c.staleness, o.staleness),
            applied_version=func.coalesce(marks.c.version, o.applied_version),
        )
    )


def applied_params(marks: Sequence[AppliedMark]) -> dict[str, Any]:
    """`applied_mark`'s parameters."""
    return {
        "mark_jobs": [m.job_id for m in marks],
        "mark_staleness": [m.staleness for m in marks],
        "mark_versions": [m.version for m in marks],
    }


def mark_applied(session: Session, mark: AppliedMark) -> None:
    """Record in Postgres that the job's swarm update is in Redis. Lost in a crash, the mark is redone: the
    update itself is idempotent in Redis. (A worker's own job marks it with the release that follows:
    `queue.jobs.release`.)"""
    relaxed_commit(session)
    session.execute(applied_mark(), applied_params([mark]))
    session.commit()


def unapplied_in_stream(job: Any) -> Exists:
    """Whether the stream of ``job`` (columns experiment_id, condition, replicate) holds outcomes whose swarm
    update is not applied: the claim's cheap check. The unapplied outcomes (few: a dead worker's, and those
    in flight) are read first, from their partial index; the stream's jobs are never scanned."""
    o, j = Outcome.__table__.c, Job.__table__.alias("uj")
    pending = select(func.array_agg(o.job_id)).where(not_(o.update_applied)).scalar_subquery()
    none: Any = literal_column("'{}'::bigint[]")
    return exists().where(
        j.c.id == any_(func.coalesce(pending, none)),  # an array, read once: not a subquery per job
        j.c.experiment_id == job.experiment_id,
        j.c.condition == job.condition,
        j.c.replicate == job.replicate,
    )
