"""Taking jobs: the claim (queued or expired → running) and the lease renewal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, Text, and_, any_, bindparam, func, not_, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement, ColumnElement

from swarmq.queue.jobs.tables import (
    EXPERIMENTS,
    ISSUES,
    JOBS,
    Executor,
    Publishable,
    expired,
    ids,
    lease,
    movable,
    out_of_attempts,
    runs,
    target,
)
from swarmq.states import ExperimentState, JobAction, JobStatus
from swarmq.store.frozen import frozen
from swarmq.store.outcomes import relaxed_commit, unapplied_in_stream


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job a worker holds the lease of, with what running it needs: its stream and position, its issue,
    and whether its stream has swarm updates still to apply."""

    id: int
    experiment_id: int
    issue_id: int
    condition: str
    replicate: int
    position: int
    sample: int
    """Which of its cell's samples (`GenerationConfig.samples`); 0 is the one that feeds the swarm."""
    attempts: int
    """Claims of this job so far, this one included."""
    unapplied: bool
    """The job's stream holds outcomes whose swarm update is not applied yet (a worker died between its
    outcome and its Redis update)."""
    instance_id: str
    problem: str
    task_type: str
    category: str | None
    repo: str | None
    data: dict[str, Any]


_CLAIMED = tuple(Claimed.__dataclass_fields__)


def _admissible() -> ColumnElement[bool]:
    """What a message must be for any of its jobs to be claimed, whoever published it: the job is of the
    worker's model (parameter model_key; NULL: any, for callers that claim by id outside a worker), its
    experiment is active, and the message carries the jobs of one experiment, no more than that
    experiment's ``jobs_per_message`` (`broker.publish` never sends more)."""
    c, e = JOBS.c, EXPERIMENTS.c
    model = bindparam("model_key", type_=Text)
    count = func.cardinality(ids("job_ids"))
    per_message = func.coalesce(e.config["jobs_per_message"].as_integer(), 1)
    fits = select(e.id).where(e.state == ExperimentState.ACTIVE, count <= per_message)
    m = JOBS.alias("message_jobs")
    experiments = (
        select(func.count(m.c.experiment_id.distinct()))
        .where(m.c.id == any_(ids("job_ids")))
        .scalar_subquery()
    )
    return and_(or_(model.is_(None), c.model_key == model), c.experiment_id.in_(fits), experiments == 1)


@frozen
def _claim_statement() -> ClauseElement:
    """The claim (`claim_many`), with parameters job_ids (an array), owner, lease_seconds, max_attempts and
    model_key."""
    c, i = JOBS.c, ISSUES.c
    owner = bindparam("owner", type_=Text)
    mine = and_(c.status == JobStatus.RUNNING, c.lease_owner == owner)
    taken_over = and_(
        c.status == JobStatus.RUNNING,
        expired(),
        not_(out_of_attempts(bindparam("max_attempts", type_=Integer))),
        runs(),
    )
    claimed = (
        update(JOBS)
        .where(c.id == any_(ids("job_ids")))
        .where(movable(JobAction.CLAIM), or_(c.status == JobStatus.QUEUED, mine, taken_over))
        .where(_admissible())
        .values(
            status=target(JobAction.CLAIM),
            lease_owner=owner,
            attempts=c.attempts + 1,
            lease_expires_at=lease(bindparam("lease_seconds", type_=Float)),
            started_at=func.now(),
            error=None,
        )
        .returning(
            c.id, c.experiment_id, c.issue_id, c.condition, c.replicate, c.position, c.sample, c.attempts
        )
        .cte("claimed")
    )
    return select(
        claimed,
        unapplied_in_stream(claimed.c).label("unapplied"),
        i.instance_id,
        i.problem,
        i.task_type,
        i.category,
        i.repo,
        i.data,
    ).join(ISSUES, i.id == claimed.c.issue_id)


def claim_many(
    session: Executor,
    job_ids: Sequence[int],
    owner: str,
    lease_seconds: float,
    max_attempts: int,
    *,
    model_key: str | None = None,
) -> list[Claimed]:
    """Take each job that is queued, or whose lease expired with attempts to spare, or that is already leased
    to ``owner`` (our own retry after a connection dropped before the reply); the jobs taken, in the order of
    ``job_ids``. Those left out: someone else has them, or they are over, or out of attempts (the reaper
    fails them). A broker message carries one job, or several (`broker.publish`): one statement claims them,
    and none of them unless the message is `_admissible` for a worker of ``model_key``.

    The statement also returns each job's issue and says whether the job's stream holds outcomes whose swarm
    update is not applied yet (``unapplied``), so the common case costs no second query. The claim is durable
    (a normal commit): a claim lost in a Postgres crash would put the job back in the queue while its worker
    still runs it, and the work would run twice.
    """
    rows = _claim_statement().run(
        session,
        job_ids=list(job_ids),
        owner=owner,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
        model_key=model_key,
    )
    session.commit()
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    taken = [Claimed(**{k: getattr(r, k) for k in _CLAIMED}) for r in rows]
    return sorted(taken, key=lambda j: order[j.id])


def claim(
    session: Executor,
    job_id: int,
    owner: str,
    lease_seconds: float,
    max_attempts: int,
    *,
    model_key: str | None = None,
) -> Claimed | None:
    """`claim_many` of one job: the job, or None."""
    rows = claim_many(session, [job_id], owner, lease_seconds, max_attempts, model_key=model_key)
    return rows[0] if rows else None


def renew(session: Session, job_ids: Sequence[int], owner: str, lease_seconds: float) -> set[int]:
    """Heartbeat: extend our leases (`JobAction.RENEW`); the jobs still ours."""
    relaxed_commit(session)
    c = JOBS.c
    held = session.execute(
        update(JOBS)
        .where(c.id == any_(ids("job_ids")), c.lease_owner == owner, movable(JobAction.RENEW))
        .values(lease_expires_at=lease(lease_seconds))  # running stays running: no status write, no trigger
        .returning(c.id),
        {"job_ids": list(job_ids)},
    ).scalars()
    out = {int(j) for j in held}
    session.commit()
    return out


@dataclass(frozen=True)
class Refusal:
    """Why a message's jobs were not claimed, and those of them to publish again, each to its own model's
    queue (real queued jobs of an active experiment that came in a message this worker must not run)."""

    reason: str
    republish: Publishable
    routine: bool = False
    """A second delivery of jobs that another worker holds or that are over: what redelivery does."""


def refusal(session: Executor, job_ids: Sequence[int], model_key: str) -> Refusal:
    """Why `claim_many` took none of ``job_ids`` for a worker of ``model_key`` (read after the fact: the
    common answer is a second delivery of jobs that ran already)."""
    c, e = JOBS.c, EXPERIMENTS.c
    rows = session.execute(
        select(
            c.id, c.model_key, c.status, c.experiment_id, e.state, e.config["jobs_per_message"].as_integer()
        )
        .join(EXPERIMENTS, e.id == c.experiment_id)
        .where(c.id == any_(ids("job_ids"))),
        {"job_ids": list(job_ids)},
    ).all()
    return decide_refusal([_Row(*r) for r in rows], len(job_ids), model_key)


@dataclass(frozen=True)
class _Row:
    id: int
    model_key: str
    status: str
    experiment_id: int
    experiment_state: str
    per_message: int | None


def decide_refusal(rows: Sequence[_Row], count: int, model_key: str) -> Refusal:
    """`refusal`'s decision (pure), from the message's jobs that exist."""
    if not rows:
        return Refusal("no such job", [])
    runnable = [
        r for r in rows if r.status == JobStatus.QUEUED and r.experiment_state == ExperimentState.ACTIVE
    ]
    experiments = {r.experiment_id for r in rows}
    limit = rows[0].per_message or 1
    if len(experiments) > 1:
        reason = f"jobs of {len(experiments)} experiments in one message"
    elif count > limit:
        reason = f"{count} jobs in one message (its experiment sends {limit})"
    elif others := sorted({r.model_key for r in rows if r.model_key != model_key}):
        reason = f"job of model {', '.join(others)}, not this worker's {model_key}"
        runnable = [r for r in runnable if r.model_key != model_key]
    elif not runnable and any(r.experiment_state != ExperimentState.ACTIVE for r in rows):
        return Refusal(f"experiment {rows[0].experiment_state}", [])
    else:
        return Refusal("not queued (leased elsewhere or finished)", [], routine=True)
    return Refusal(reason, [(r.id, r.model_key) for r in sorted(runnable, key=lambda r: r.id)])
