"""A job's end, by the worker that holds its lease: done or failed, with its outcome in the same statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Boolean, Float, Text, bindparam, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from swarmq.experiment.config import ExperimentConfig
from swarmq.queue.jobs.tables import EXPERIMENTS, ISSUES, JOBS, OUTCOMES, Executor, target
from swarmq.states import FINISHED, JobAction, JobStatus
from swarmq.store.frozen import frozen
from swarmq.store.outcomes import failure_record


def _finished_by(session: Executor, job_id: int, owner: str) -> bool:
    """The job was closed by ``owner`` with an outcome of its own (`finish`; not `fail`, whose failure outcome
    has no agent): our own commit, retried."""
    row = session.execute(
        select(JOBS.c.status, JOBS.c.lease_owner, OUTCOMES.c.id, OUTCOMES.c.agent_id)
        .join(OUTCOMES, OUTCOMES.c.job_id == JOBS.c.id, isouter=True)
        .where(JOBS.c.id == job_id)
    ).first()
    return (
        row is not None
        and row.status in FINISHED
        and row.lease_owner == owner
        and row.id is not None
        and row.agent_id is not None
    )


def _close_held(job_id: Any, owner: Any, status: Any, error: Any) -> Any:
    """True once the job is closed (``status``, ``error``) by ``owner``, who held its lease: the server-side
    ``swarmq_close`` (`JobAction.FINISH` and `JobAction.FAIL`), the lease-holder rule: a worker that lost its
    lease never overwrites another's work. The function leaves ``lease_owner``: it records who finished the
    job, and lets that worker recognise its own commit when it retries after a dropped connection."""
    return func.swarmq_close(job_id, owner, status, error, type_=Boolean)


@frozen
def _finish_statement(columns: tuple[str, ...], many: bool) -> ClauseElement:
    """The outcome INSERT that selects from the closes (`finish_many`): parameters lease_owner, job,
    job_status, job_error and the outcome's ``columns``; with ``many``, each an array (a row per job,
    unnested), else a value: a message of one job (the common case) does not pay for psycopg dumping a list
    per column."""
    typed: dict[str, Any] = {
        "job": BigInteger(),
        "job_status": Text(),
        "job_error": Text(),
        **{k: OUTCOMES.c[k].type for k in columns},
    }
    rows: dict[str, Any]
    if many:  # dimensions=1: a JSONB value that is a list (example_ids) is one element, not a nested array
        arrays = func.unnest(*(bindparam(k, type_=ARRAY(t, dimensions=1)) for k, t in typed.items()))
        unnested = arrays.table_valued(*typed).render_derived(name="rows")
        rows = {k: unnested.c[k] for k in typed}
    else:
        rows = {k: bindparam(k, type_=t) for k, t in typed.items()}
    closed = _close_held(
        rows["job"], bindparam("lease_owner", type_=Text), rows["job_status"], rows["job_error"]
    )
    # The columns' own defaults (Python-side, which a frozen statement would not run) as literals.
    defaults = {
        c.name: c.default.arg
        for c in OUTCOMES.c
        if c.name not in (*columns, "id", "job_id") and isinstance(c.default, ScalarElementColumnDefault)
    }
    literals = [literal(v, OUTCOMES.c[k].type) for k, v in defaults.items()]
    values = select(rows["job"], *(rows[k] for k in columns), *literals).where(closed)
    return (
        insert(OUTCOMES)
        .from_select(["job_id", *columns, *defaults], values, include_defaults=False)
        .returning(OUTCOMES.c.job_id)
    )


@dataclass(frozen=True)
class Finished:
    """A job's end as its worker writes it (`finish_many`): the outcome row, and the job's status (done, or
    failed with its error)."""

    job_id: int
    outcome: dict[str, Any]
    status: JobStatus = JobStatus.DONE
    error: str | None = None

    def __post_init__(self) -> None:
        status = JobStatus(self.status)  # a plain "done" is accepted; anything else fails here, loudly
        if status not in FINISHED:
            raise ValueError(f"job {self.job_id}: a job ends done or failed, not {status}")
        object.__setattr__(self, "status", status)


def finish_many(session: Executor, owner: str, finished: Sequence[Finished]) -> set[int]:
    """Close each job (done, or failed with its error) and write its outcome, atomically, while ``owner``
    holds its lease; the jobs closed. A job left out: ``owner`` no longer holds it (the lease expired or went
    to another worker: the caller drops its result), unless it was already closed by ``owner`` itself (our
    retry after a dropped connection), which counts as closed.

    One statement for all: each outcome row selects from its job's close, so each job's close and outcome
    commit together or not at all (a durable commit: outcomes are never relaxed). Every outcome names the
    same columns (`worker.planning.outcome_record`). The unique constraint on outcomes.job_id keeps one
    outcome per job whatever this code does."""
    if not finished:
        return set()
    columns = tuple(finished[0].outcome)
    if any(tuple(f.outcome) != columns for f in finished):
        raise ValueError("finish_many: every outcome must name the same columns, in the same order")
    rows = [{"job": f.job_id, "job_status": f.status, "job_error": f.error, **f.outcome} for f in finished]
    many = len(rows) > 1
    # psycopg refuses a list mixing ints and floats (a generator's 0 beside a 0.0): float columns get floats.
    floats = {k for k in columns if isinstance(OUTCOMES.c[k].type, Float)}
    params = (
        {k: [float(r[k]) if k in floats and r[k] is not None else r[k] for r in rows] for k in rows[0]}
        if many
        else rows[0]
    )
    written = _finish_statement(columns, many).run(session, lease_owner=owner, **params)
    session.commit()
    closed = {int(r[0]) for r in written}
    return closed | {
        f.job_id for f in finished if f.job_id not in closed and _finished_by(session, f.job_id, owner)
    }


def finish(
    session: Executor,
    job_id: int,
    owner: str,
    outcome: dict[str, Any],
    *,
    status: JobStatus = JobStatus.DONE,
    error: str | None = None,
) -> bool:
    """`finish_many` of one job: whether it is closed, by ``owner``."""
    return bool(finish_many(session, owner, [Finished(job_id, outcome, status, error)]))


def fail(session: Session, job_id: int, owner: str, reason: str) -> bool:
    """Fail a job that ended without an outcome of its own (an unexpected error while running it), while
    ``owner`` holds it; it gets a failure outcome in the same transaction."""
    closed = bool(
        session.execute(select(_close_held(job_id, owner, target(JobAction.FAIL), reason))).scalar()
    )
    record_failures(session, [job_id] if closed else [])
    session.commit()
    return closed


def record_failures(session: Session, job_ids: list[int]) -> None:
    """Write the failure outcome (`outcomes.failure_record`) of each job just failed: every terminal job has
    an outcome, so a strict stream has no gap and every denominator counts every job."""
    if not job_ids:
        return
    rows = session.execute(
        select(
            JOBS.c.id,
            JOBS.c.condition,
            JOBS.c.error,
            JOBS.c.lease_owner,
            ISSUES.c.task_type,
            EXPERIMENTS.c.id,
            EXPERIMENTS.c.config,
        )
        .join(ISSUES, ISSUES.c.id == JOBS.c.issue_id)
        .join(EXPERIMENTS, EXPERIMENTS.c.id == JOBS.c.experiment_id)
        .where(JOBS.c.id.in_(job_ids))
    ).all()
    configs: dict[int, ExperimentConfig] = {}
    records = []
    for job_id, condition, reason, owner, task_type, exp_id, raw in rows:
        config = configs.setdefault(exp_id, ExperimentConfig.stored(raw))
        model_name = config.model_for(condition).label
        record = failure_record(
            str(reason or JobStatus.FAILED.value),
            task_type=task_type,
            rule=config.effective_rule(),
            worker=str(owner or "").split("/")[0],
            model_name=model_name,
        )
        records.append({"job_id": job_id, **record})
    session.execute(pg_insert(OUTCOMES).values(records).on_conflict_do_nothing(index_elements=["job_id"]))
