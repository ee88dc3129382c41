"""The jobs table's state machine: every transition of a job; nothing else writes `jobs.status` but the
experiment-wide ones of `lifecycle` (pause, resume, cancel, retry).

    pending ──release──▶ queued ──claim──▶ running ──finish──▶ done | failed
                          ▲                   │
                          └─requeue_expired───┤ (lease expired, attempts left)
                          └─give_back─────────┘ (graceful shutdown past its grace period)
    running ──fail──────────▶ failed (an unexpected error while running it)
    running ──fail_exhausted──▶ failed (lease expired, out of attempts)
    queued ◀─resume── paused ◀─pause── queued        pending | queued | paused ──cancel──▶ cancelled
    failed ──retry──▶ pending (never reached an agent)                    (`lifecycle`: one experiment's jobs)

A paused or cancelled experiment (`experiments.state`) moves nothing: `release` queues none of its jobs,
`claim` takes none of its expired leases, and a lease that expires goes back to paused or cancelled.

Every job that ends has an outcome: `finish` writes the job's own, `fail` and `fail_exhausted` a failure
outcome, in the same transaction. The jobs table is the truth; the broker only carries job ids. Every transition is one guarded UPDATE, so a
second delivery of a job that is leased or done does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Float,
    Integer,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from swarmq import keys
from swarmq.experiment.config import ExperimentConfig
from swarmq.store.frozen import frozen
from swarmq.store.outcomes import (
    AppliedMark,
    applied_mark,
    applied_params,
    failure_record,
    relaxed_commit,
    unapplied_in_stream,
)
from swarmq.store.schema import Experiment, Job, Outcome
from swarmq.store.schema import Issue as IssueRow

# Core tables, not ORM entities, on the hot path: no identity map or object loading per job.
JOBS: Table = Job.__table__  # type: ignore[assignment]
OUTCOMES: Table = Outcome.__table__  # type: ignore[assignment]
EXPERIMENTS: Table = Experiment.__table__  # type: ignore[assignment]
ISSUES: Table = IssueRow.__table__  # type: ignore[assignment]
Executor = Session | Connection
"""What the job path's statements run in: a Session, or a Core connection (a worker's, in autocommit)."""
Claimed: TypeAlias = Any
"""A claimed job's id, experiment_id, issue_id, condition, replicate, position and attempts; whether its stream
has ``unapplied`` swarm updates; its issue's instance_id, problem, task_type, category, repo and data."""


def _out_of_attempts(max_attempts: int | ColumnElement[int]) -> ColumnElement[bool]:
    """The one rule for a job whose workers keep dying: claimed ``max_attempts`` times, it is not run again."""
    return JOBS.c.attempts >= max_attempts


def _expired() -> ColumnElement[bool]:
    return and_(JOBS.c.status == "running", JOBS.c.lease_expires_at < func.now())


def _runs() -> ColumnElement[bool]:
    """The job's experiment is active (not paused or cancelled, `lifecycle`)."""
    return JOBS.c.experiment_id.in_(select(EXPERIMENTS.c.id).where(EXPERIMENTS.c.state == "active"))


def _lease(seconds: float | ColumnElement[float]) -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)


@frozen
def _claim_statement() -> ClauseElement:
    """The claim (`claim_many`), with parameters job_ids (an array), owner, lease_seconds and max_attempts."""
    c, i = JOBS.c, ISSUES.c
    owner = bindparam("owner", type_=Text)
    mine = and_(c.status == "running", c.lease_owner == owner)
    expired = and_(_expired(), not_(_out_of_attempts(bindparam("max_attempts", type_=Integer))), _runs())
    claimed = (
        update(JOBS)
        .where(c.id == any_(_ids("job_ids")))
        .where(or_(c.status == "queued", mine, expired))
        .values(
            status="running",
            lease_owner=owner,
            attempts=c.attempts + 1,
            lease_expires_at=_lease(bindparam("lease_seconds", type_=Float)),
            started_at=func.now(),
            error=None,
        )
        .returning(c.id, c.experiment_id, c.issue_id, c.condition, c.replicate, c.position, c.attempts)
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


def _ids(name: str) -> ColumnElement[Any]:
    """A parameter that is a list of job ids, sent as one bigint array (an index lookup per element)."""
    return bindparam(name, type_=ARRAY(BigInteger, dimensions=1))


def claim_many(
    session: Executor, job_ids: Sequence[int], owner: str, lease_seconds: float, max_attempts: int
) -> list[Claimed]:
    """Take each job that is queued, or whose lease expired with attempts to spare, or that is already leased to
    ``owner`` (our own retry after a connection dropped before the reply); the jobs taken, in the order of
    ``job_ids``. Those left out: someone else has them, or they are over, or out of attempts (the reaper
    fails them). A broker message carries one job, or several (`broker.publish`): one statement claims them all.

    The statement also returns each job's issue and says whether the job's stream holds outcomes whose swarm
    update is not applied yet (``unapplied``: a worker died between its outcome and its Redis update), so the
    common case costs no second query. The claim is durable (a normal commit): a claim lost in a Postgres crash
    would put the job back in the queue while its worker still runs it, and the work would run twice.
    """
    rows = _claim_statement().run(
        session, job_ids=list(job_ids), owner=owner, lease_seconds=lease_seconds, max_attempts=max_attempts
    )
    session.commit()
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    return sorted(rows, key=lambda r: order[r.id])


def claim(
    session: Executor, job_id: int, owner: str, lease_seconds: float, max_attempts: int
) -> Claimed | None:
    """`claim_many` of one job: the job, or None."""
    rows = claim_many(session, [job_id], owner, lease_seconds, max_attempts)
    return rows[0] if rows else None


def renew(session: Session, job_ids: Sequence[int], owner: str, lease_seconds: float) -> set[int]:
    """Heartbeat: extend our leases; the jobs still ours."""
    relaxed_commit(session)
    c = JOBS.c
    held = session.execute(
        update(JOBS)
        .where(c.id == any_(_ids("job_ids")), c.lease_owner == owner, c.status == "running")
        .values(lease_expires_at=_lease(lease_seconds))
        .returning(c.id),
        {"job_ids": list(job_ids)},
    ).scalars()
    out = {int(j) for j in held}
    session.commit()
    return out


def _close(status: str, error: Any) -> dict[str, Any]:
    """A job's closing values. ``lease_owner`` stays: it records who finished the job, and lets that worker
    recognise its own commit when it retries after a dropped connection."""
    return {"status": status, "error": error, "finished_at": func.now(), "lease_expires_at": None}


def _held(job_id: int, owner: str) -> ColumnElement[bool]:
    """Only the lease holder gives a job back (the test of ``swarmq_close``, which closes one: migration 0009)."""
    return and_(JOBS.c.id == job_id, JOBS.c.status == "running", JOBS.c.lease_owner == owner)


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
        and row.status in ("done", "failed")
        and row.lease_owner == owner
        and row.id is not None
        and row.agent_id is not None
    )


def _close_held(job_id: Any, owner: Any, status: Any, error: Any) -> Any:
    """True once the job is closed (``status``, ``error``) by ``owner``, who held its lease (migration 0009's
    ``swarmq_close``, the lease-holder rule: a worker that lost its lease never overwrites another's work)."""
    return func.swarmq_close(job_id, owner, status, error, type_=Boolean)


@frozen
def _finish_statement(columns: tuple[str, ...], many: bool) -> ClauseElement:
    """The outcome INSERT that selects from the closes (`finish_many`): parameters lease_owner, job, job_status,
    job_error and the outcome's ``columns``; with ``many``, each an array (a row per job, unnested), else a
    value: a message of one job (the common case) does not pay for psycopg dumping a list per column."""
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
    """A job's end as its worker writes it (`finish_many`): the outcome row, and the job's status and error."""

    job_id: int
    outcome: dict[str, Any]
    status: str = "done"
    error: str | None = None


def finish_many(session: Executor, owner: str, finished: Sequence[Finished]) -> set[int]:
    """Close each job (done, or failed with its error) and write its outcome, atomically, while ``owner`` holds
    its lease; the jobs closed. A job left out: ``owner`` no longer holds it (the lease expired or went to
    another worker: the caller drops its result), unless it was already closed by ``owner`` itself (our retry
    after a dropped connection), which counts as closed.

    One statement for all: each outcome row selects from its job's close, so each job's close and outcome
    commit together or not at all (a durable commit: outcomes are never relaxed). Every outcome names the same
    columns (`worker.planning.outcome_record`). The unique constraint on outcomes.job_id keeps one outcome per
    job whatever this code does."""
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
    status: str = "done",
    error: str | None = None,
) -> bool:
    """`finish_many` of one job: whether it is closed, by ``owner``."""
    return bool(finish_many(session, owner, [Finished(job_id, outcome, status, error)]))


def fail(session: Session, job_id: int, owner: str, reason: str) -> bool:
    """Fail a job that ended without an outcome of its own (an unexpected error while running it), while
    ``owner`` holds it; it gets a failure outcome in the same transaction."""
    closed = bool(session.execute(select(_close_held(job_id, owner, "failed", reason))).scalar())
    _record_failures(session, [job_id] if closed else [])
    session.commit()
    return closed


def _record_failures(session: Session, job_ids: list[int]) -> None:
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
            str(reason or "failed"),
            task_type=task_type,
            rule=config.effective_rule(),
            worker=str(owner or "").split("/")[0],
            model_name=model_name,
        )
        records.append({"job_id": job_id, **record})
    session.execute(pg_insert(OUTCOMES).values(records).on_conflict_do_nothing(index_elements=["job_id"]))


def _requeue(session: Session, *where: ColumnElement[bool]) -> list[tuple[int, str]]:
    """Running jobs matching ``where`` go back to the queue, or to paused or cancelled when their experiment
    is; (job id, model key) of each queued one, to publish again."""
    state = EXPERIMENTS.c.state
    rows = session.execute(
        update(JOBS)
        .where(*where, JOBS.c.experiment_id == EXPERIMENTS.c.id)
        .values(
            status=case((state == "paused", "paused"), (state == "cancelled", "cancelled"), else_="queued"),
            lease_owner=None,
            lease_expires_at=None,
            published_at=func.now(),
        )
        .returning(JOBS.c.id, JOBS.c.model_key, JOBS.c.status)
    ).all()
    return [(int(j), str(k)) for j, k, status in rows if status == "queued"]


def give_back(session: Session, job_id: int, owner: str) -> str | None:
    """Queue a running job of ours again (graceful shutdown past the grace period); its model key, for
    publishing it again, or None when it was not ours any more."""
    requeued = _requeue(session, _held(job_id, owner))
    session.commit()
    return requeued[0][1] if requeued else None


def fail_exhausted(session: Session, max_attempts: int) -> list[int]:
    """Expired leases of jobs out of attempts (their worker died each time): failed, with the reason and a
    failure outcome. The caller commits."""
    reason = func.concat(
        "worker died ", JOBS.c.attempts, " times while running this job (max_attempts reached)"
    )
    rows = session.execute(
        update(JOBS)
        .where(_expired(), _out_of_attempts(max_attempts))
        .values(**_close("failed", reason))
        .returning(JOBS.c.id)
    ).all()
    failed = [int(r[0]) for r in rows]
    _record_failures(session, failed)
    return failed


def requeue_expired(session: Session) -> list[tuple[int, str]]:
    """Expired leases (their worker died): queued again. Returns (job id, model key) to publish."""
    return _requeue(session, _expired())


Publishable = list[tuple[int, str]]
"""(job id, model key) pairs, in publish order: what `broker.publish` sends."""


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
    outside the window (until `lifecycle.retry_failed` reopens old positions). A paused or cancelled experiment
    releases nothing.

    The rule is migration 0009's ``swarmq_release``: one statement, whose own statements take the experiment's
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


def queued(session: Session, experiment_id: int) -> Publishable:
    """An experiment's queued jobs in publish order."""
    q = (
        select(Job.id, Job.model_key)
        .where(Job.experiment_id == experiment_id, Job.status == "queued")
        .order_by(Job.seq)
    )
    return [(int(i), str(k)) for i, k in session.execute(q).all()]


OPEN = ("pending", "queued", "running")
ACTIVE = ("queued", "running")


def unfinished_models(session: Session) -> list[tuple[dict[str, Any], str]]:
    """(model config, model key) of every model with unfinished jobs in an active experiment, the model of
    the oldest experiment first (an experiment may run several: each job has its condition's model)."""
    rows = session.execute(
        text(
            "SELECT e.config, j.model_key FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
            "WHERE j.status IN ('pending', 'queued', 'running') AND e.state = 'active' "
            "GROUP BY e.id, e.config, j.model_key ORDER BY min(e.created_at), e.id, j.model_key"
        )
    ).all()
    out: list[tuple[dict[str, Any], str]] = []
    for raw, key in rows:
        model = ExperimentConfig.stored(raw).models().get(str(key))
        if model is not None and all(k != key for _, k in out):
            out.append((model.model_dump(mode="json"), str(key)))
    return out


def unfinished_count(session: Session, model_key: str, statuses: tuple[str, ...] = OPEN) -> int:
    """Jobs on a model in active experiments with one of ``statuses``: not over (a burst worker stops at 0),
    or (``ACTIVE``) queued or running, which a worker could take or is taking now."""
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
                "WHERE j.model_key = :k AND e.state = 'active' AND j.status = ANY(:s)"
            ),
            {"k": model_key, "s": list(statuses)},
        ).scalar_one()
    )


def experiments_on(session: Session, model_key: str) -> list[str]:
    """Names of active experiments with unfinished jobs on a model, oldest first."""
    return list(
        session.execute(
            text(
                "SELECT e.name FROM experiments e WHERE e.state = 'active' AND EXISTS (SELECT 1 FROM jobs j WHERE "
                "j.experiment_id = e.id AND j.model_key = :k AND j.status IN ('pending', 'queued', 'running')) "
                "ORDER BY e.created_at"
            ),
            {"k": model_key},
        ).scalars()
    )
