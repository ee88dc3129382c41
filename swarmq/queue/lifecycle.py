"""An experiment's lifecycle: pause, resume, cancel, retry its failed jobs, delete it.

    active ──pause──▶ paused ──resume──▶ active          active | paused ──cancel──▶ cancelled (final)

Postgres holds the state (`experiments.state`), so a pause or a cancel holds whatever the broker still carries:
a delivery of a job that is not ``queued`` is dropped by `jobs.claim`, the release (`jobs.release`) moves
nothing of an experiment that is not active, and a job whose worker died goes back to its experiment's state
(`jobs._requeue`). Each transition takes the experiment's producer lock and its row lock first, so it is
serialised with `enqueue`, with the release of the next jobs, and with the other transitions. Messages of jobs
that will not run are also taken out of their model's queue (a convenience: a stale one is dropped anyway).
Running jobs are never interrupted: they finish and keep their outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis as redis_lib
from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from swarmq import keys
from swarmq.errors import ExperimentStateError
from swarmq.experiment.config import ExperimentConfig
from swarmq.queue import broker
from swarmq.queue.dispatch import release_next
from swarmq.queue.jobs import Publishable
from swarmq.queue.reaper import drop_tasks
from swarmq.store.experiments import experiment_row

ACTIVE, PAUSED, CANCELLED = "active", "paused", "cancelled"
"""`store.schema.EXPERIMENT_STATES`."""
HELD = ("pending", "queued", "paused")
"""Job statuses a cancel ends: everything that has not started."""


@dataclass(frozen=True)
class Change:
    """What a lifecycle command did, for the CLI to report (`as_dict` for --format json)."""

    experiment: str
    action: str
    state: str
    """The experiment's state afterwards."""
    jobs: int
    """Jobs this command moved (paused, queued again, cancelled, reset, or deleted)."""
    running: int
    """Jobs still running: they finish and keep their outcomes (a delete with --force orphans them)."""
    published: int = 0
    kept: int = 0
    """retry: failed jobs left as they are, because their failure is a result (see `retry_failed`)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Locked:
    id: int
    state: str
    model_key: str
    config: dict[str, Any]


def _lock(session: Session, name: str) -> _Locked:
    """The experiment's producer lock (held by `enqueue`) and its row lock (the release reads the row FOR
    SHARE), both until the transaction ends; an unknown name lists the known ones."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": keys.experiment_lock(name)})
    exp_id, _ = experiment_row(session, name)
    row = session.execute(
        text("SELECT state, model_key, config FROM experiments WHERE id = :e FOR UPDATE"), {"e": exp_id}
    ).one()
    return _Locked(exp_id, str(row.state), str(row.model_key), dict(row.config))


def _set_state(session: Session, exp_id: int, state: str) -> None:
    session.execute(text("UPDATE experiments SET state = :s WHERE id = :e"), {"s": state, "e": exp_id})


def _move(session: Session, exp_id: int, to: str, frm: tuple[str, ...]) -> Publishable:
    """An experiment's jobs in one of ``frm`` get status ``to``; (id, model key) of each, in publish order."""
    ids = session.execute(
        text(
            "UPDATE jobs SET status = CAST(:to AS text), "
            "published_at = CASE WHEN CAST(:to AS text) = 'queued' THEN now() ELSE published_at END "
            "WHERE experiment_id = :e AND status = ANY(:frm) RETURNING id, model_key, seq"
        ),
        {"to": to, "e": exp_id, "frm": list(frm)},
    ).all()
    return [(int(i), str(k)) for i, k, _ in sorted(ids, key=lambda r: r[2])]


def _running(session: Session, exp_id: int) -> int:
    return int(
        session.execute(
            text("SELECT count(*) FROM jobs WHERE experiment_id = :e AND status = 'running'"), {"e": exp_id}
        ).scalar_one()
    )


def _refuse_cancelled(name: str, exp: _Locked, action: str) -> None:
    if exp.state == CANCELLED:
        raise ExperimentStateError(
            f"{action}: experiment {name!r} is cancelled (final); `swarmq delete {name} --yes` removes it, "
            "or enqueue it again under another --name"
        )


def check_enqueue(session: Session, name: str) -> str | None:
    """Before `enqueue` resumes an experiment: a cancelled one is refused (cancel is final), a paused one
    stays paused (the returned note says how to resume it)."""
    state = session.execute(text("SELECT state FROM experiments WHERE name = :n"), {"n": name}).scalar()
    if state == CANCELLED:
        raise ExperimentStateError(
            f"experiment {name!r} was cancelled; `swarmq delete {name} --yes` first, or enqueue under another --name"
        )
    return (
        f"experiment {name} is paused: nothing runs until `swarmq resume {name}`" if state == PAUSED else None
    )


def _transition(
    sessions: sessionmaker[Session], name: str, action: str, state: str, to: str, frm: tuple[str, ...]
) -> tuple[_Locked, Publishable, int]:
    """One experiment-wide move, in one transaction under the experiment's lock: the experiment takes
    ``state``, its jobs in ``frm`` become ``to``. The moved jobs and the count still running."""
    with sessions() as session:
        exp = _lock(session, name)
        if state != CANCELLED:
            _refuse_cancelled(name, exp, action)
        _set_state(session, exp.id, state)
        moved = _move(session, exp.id, to, frm)
        running = _running(session, exp.id)
        session.commit()
    return exp, moved, running


def pause(sessions: sessionmaker[Session], redis: redis_lib.Redis, name: str) -> Change:
    """Queued jobs become paused (their messages are dropped on delivery); nothing is released until resume."""
    _, ids, running = _transition(sessions, name, "pause", PAUSED, "paused", ("queued",))
    drop_tasks(redis, ids)
    return Change(name, "pause", PAUSED, len(ids), running)


def resume(sessions: sessionmaker[Session], app: Celery, name: str) -> Change:
    """Paused jobs are queued and published again, then the experiment's next pending jobs are released."""
    exp, ids, running = _transition(sessions, name, "resume", ACTIVE, "queued", ("paused",))
    published = broker.publish(app, ids)
    published += _release(sessions, app, exp)
    return Change(name, "resume", ACTIVE, len(ids), running, published)


def cancel(sessions: sessionmaker[Session], redis: redis_lib.Redis, name: str) -> Change:
    """Every job that has not started is cancelled, for good; running jobs finish. Idempotent."""
    _, ids, running = _transition(sessions, name, "cancel", CANCELLED, "cancelled", HELD)
    drop_tasks(redis, ids)
    return Change(name, "cancel", CANCELLED, len(ids), running)


RETRYABLE = "j.status = 'failed' AND (o.id IS NULL OR o.agent_id IS NULL)"
"""A failed job that never reached an agent: its worker died `max_attempts` times or an unexpected error ended
it (no outcome, or a failure outcome without an agent, `store.outcomes.failure_record`). Nothing of it is in
the swarm state, so it can run again. A job whose generation or scoring failed (a prompt over n_ctx, a
timeout) has an agent's outcome, applied to the swarm's history: that failure is a result, and stays."""


RebuildStream = Callable[[int, str, int], None]
"""Rebuilds a stream's Redis state from Postgres (experiment id, condition, replicate); injected, since
`streams.sync` sits above the queue."""


def retry_failed(sessions: sessionmaker[Session], app: Celery, name: str, rebuild: RebuildStream) -> Change:
    """Failed jobs that never reached an agent (`RETRYABLE`) become pending with fresh attempts, their failure
    outcomes removed; then they are released (unless the experiment is paused). They run after their streams
    have moved on: each outcome records the swarm state version it was routed from.

    A failure outcome moved its stream's version on and marked its job applied in Redis; ``rebuild`` redoes
    each affected stream from Postgres without it, before the job is released, so that its new update counts
    and the live state stays what a rebuild gives."""
    with sessions() as session:
        exp = _lock(session, name)
        _refuse_cancelled(name, exp, "retry")
        rows = session.execute(
            text(
                f"SELECT j.id, j.condition, j.replicate FROM jobs j LEFT JOIN outcomes o ON o.job_id = j.id "
                f"WHERE j.experiment_id = :e AND {RETRYABLE}"
            ),
            {"e": exp.id},
        ).all()
        ids = [int(r.id) for r in rows]
        session.execute(text("DELETE FROM outcomes WHERE job_id = ANY(:ids)"), {"ids": ids})
        session.execute(
            text(
                "UPDATE jobs SET status = 'pending', attempts = 0, error = NULL, lease_owner = NULL, "
                "lease_expires_at = NULL, started_at = NULL, finished_at = NULL WHERE id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        kept = int(
            session.execute(
                text("SELECT count(*) FROM jobs WHERE experiment_id = :e AND status = 'failed'"),
                {"e": exp.id},
            ).scalar_one()
        )
        running = _running(session, exp.id)
        session.commit()
    for condition, replicate in sorted({(r.condition, r.replicate) for r in rows}):
        rebuild(exp.id, condition, replicate)
    published = _release(sessions, app, exp) if exp.state == ACTIVE else 0
    return Change(name, "retry", exp.state, len(ids), running, published, kept)


def delete(sessions: sessionmaker[Session], redis: redis_lib.Redis, name: str, *, force: bool) -> Change:
    """Remove the experiment's rows (issues, jobs, outcomes by cascade), its swarm state in Redis and its
    messages in the broker. Refused while jobs run unless ``force``: a running job's worker then finds its
    job gone and drops its result."""
    with sessions() as session:
        exp = _lock(session, name)
        running = _running(session, exp.id)
        if running and not force:
            raise ExperimentStateError(
                f"delete: experiment {name!r} has {running} running job(s); `swarmq cancel {name}` and wait for "
                "them to finish, or pass --force to delete anyway (their results are dropped)"
            )
        ids = [
            (int(i), str(k))
            for i, k in session.execute(
                text("SELECT id, model_key FROM jobs WHERE experiment_id = :e"), {"e": exp.id}
            ).all()
        ]
        session.execute(text("DELETE FROM experiments WHERE id = :e"), {"e": exp.id})
        session.commit()
    drop_tasks(redis, ids)
    _delete_swarm_state(redis, name, exp.id)
    return Change(name, "delete", "deleted", len(ids), running)


def _delete_swarm_state(redis: redis_lib.Redis, name: str, exp_id: int) -> int:
    """Every Redis key of the experiment's streams (`keys.stream_key`: the id keeps a later experiment of the
    same name apart)."""
    one = keys.stream_key(_glob_escape(name), exp_id, "", 0, "")
    pattern = one[: one.rindex(f"#{exp_id}/") + len(f"#{exp_id}/")] + "*"
    doomed = list(redis.scan_iter(match=pattern, count=1000))
    return int(redis.delete(*doomed)) if doomed else 0


def _glob_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


def _release(sessions: sessionmaker[Session], app: Celery, exp: _Locked) -> int:
    """Release the experiment's next pending jobs (in-flight limits, position window), as enqueue does."""
    return release_next(sessions, app, exp.id, ExperimentConfig.stored(exp.config))
