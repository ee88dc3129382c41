"""An experiment's lifecycle: pause, resume, cancel, retry its failed jobs, delete it.

    active ──pause──▶ paused ──resume──▶ active          active | paused ──cancel──▶ cancelled (final)

Postgres holds the state (`experiments.state`), so a pause or a cancel holds whatever the broker still
carries: a delivery of a job that is not ``queued`` is dropped by `jobs.claim`, the release (`jobs.release`)
moves nothing of an experiment that is not active, and a job whose worker died goes back to its experiment's
state (`states.QUEUED_IN`). How each command moves the jobs is `states.TRANSITIONS` (`jobs.moves`). Each
transition takes the experiment's producer lock and its row lock first, so it is serialised with `enqueue`,
with the release of the next jobs, and with the other transitions. Messages of jobs that will not run are also
taken out of their model's queue (a convenience: a stale one is dropped anyway). Running jobs are never
interrupted: they finish and keep their outcomes.
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
from swarmq.queue.jobs import Publishable, moves
from swarmq.queue.reaper import drop_tasks
from swarmq.states import TRANSITIONS, ExperimentState, JobAction, JobStatus
from swarmq.store.experiments import experiment_row


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
    state: ExperimentState
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
    return _Locked(exp_id, ExperimentState(row.state), str(row.model_key), dict(row.config))


def _set_state(session: Session, exp_id: int, state: ExperimentState) -> None:
    session.execute(text("UPDATE experiments SET state = :s WHERE id = :e"), {"s": state, "e": exp_id})


def _refuse_cancelled(name: str, exp: _Locked, action: str) -> None:
    if exp.state == ExperimentState.CANCELLED:
        raise ExperimentStateError(
            f"{action}: experiment {name!r} is cancelled (final); `swarmq delete {name} --yes` removes it, "
            "or enqueue it again under another --name"
        )


def check_enqueue(session: Session, name: str) -> str | None:
    """Before `enqueue` resumes an experiment: a cancelled one is refused (cancel is final), a paused one
    stays paused (the returned note says how to resume it)."""
    state = session.execute(text("SELECT state FROM experiments WHERE name = :n"), {"n": name}).scalar()
    if state == ExperimentState.CANCELLED:
        raise ExperimentStateError(
            f"experiment {name!r} was cancelled; `swarmq delete {name} --yes` first, "
            "or enqueue under another --name"
        )
    return (
        f"experiment {name} is paused: nothing runs until `swarmq resume {name}`"
        if state == ExperimentState.PAUSED
        else None
    )


def _transition(
    sessions: sessionmaker[Session], name: str, action: JobAction
) -> tuple[_Locked, Publishable, int]:
    """One experiment-wide move, in one transaction under the experiment's lock: the experiment takes the
    action's state, and its jobs move as `states.TRANSITIONS` says. The moved jobs and the count still
    running."""
    state = TRANSITIONS[action].experiment
    assert state is not None, f"{action} is not experiment-wide"
    with sessions() as session:
        exp = _lock(session, name)
        if state != ExperimentState.CANCELLED:
            _refuse_cancelled(name, exp, action)
        _set_state(session, exp.id, state)
        moved = moves.move(session, exp.id, action)
        running = moves.count(session, exp.id, JobStatus.RUNNING)
        session.commit()
    return exp, moved, running


def pause(sessions: sessionmaker[Session], redis: redis_lib.Redis, name: str) -> Change:
    """Queued jobs become paused (their messages are dropped on delivery); nothing is released until
    resume."""
    _, ids, running = _transition(sessions, name, JobAction.PAUSE)
    drop_tasks(redis, ids)
    return Change(name, JobAction.PAUSE, ExperimentState.PAUSED, len(ids), running)


def resume(sessions: sessionmaker[Session], app: Celery, name: str) -> Change:
    """Paused jobs are queued and published again, then the experiment's next pending jobs are released."""
    exp, ids, running = _transition(sessions, name, JobAction.RESUME)
    published = broker.publish(app, ids)
    published += _release(sessions, app, exp)
    return Change(name, JobAction.RESUME, ExperimentState.ACTIVE, len(ids), running, published)


def cancel(sessions: sessionmaker[Session], redis: redis_lib.Redis, name: str) -> Change:
    """Every job that has not started is cancelled, for good; running jobs finish. Idempotent."""
    _, ids, running = _transition(sessions, name, JobAction.CANCEL)
    drop_tasks(redis, ids)
    return Change(name, JobAction.CANCEL, ExperimentState.CANCELLED, len(ids), running)


RebuildStream = Callable[[int, str, int], None]
"""Rebuilds a stream's Redis state from Postgres (experiment id, condition, replicate); injected, since
`streams.sync` sits above the queue."""


def retry_failed(sessions: sessionmaker[Session], app: Celery, name: str, rebuild: RebuildStream) -> Change:
    """Failed jobs that never reached an agent (`jobs.moves.retryable`) become pending with fresh attempts,
    their failure outcomes removed; then they are released (unless the experiment is paused). They run after
    their streams have moved on: each outcome records the swarm state version it was routed from.

    A failure outcome moved its stream's version on and marked its job applied in Redis; ``rebuild`` redoes
    each affected stream from Postgres without it, before the job is released, so that its new update counts
    and the live state stays what a rebuild gives."""
    with sessions() as session:
        exp = _lock(session, name)
        _refuse_cancelled(name, exp, JobAction.RETRY)
        reset = moves.retry(session, exp.id)
        kept = moves.count(session, exp.id, JobStatus.FAILED)
        running = moves.count(session, exp.id, JobStatus.RUNNING)
        session.commit()
    for condition, replicate in sorted({(r.condition, r.replicate) for r in reset}):
        rebuild(exp.id, condition, replicate)
    published = _release(sessions, app, exp) if exp.state == ExperimentState.ACTIVE else 0
    return Change(name, JobAction.RETRY, exp.state, len(reset), running, published, kept)


def delete(sessions: sessionmaker[Session], redis: redis_lib.Redis, name: str, *, force: bool) -> Change:
    """Remove the experiment's rows (issues, jobs, outcomes by cascade), its swarm state in Redis and its
    messages in the broker. Refused while jobs run unless ``force``: a running job's worker then finds its
    job gone and drops its result."""
    with sessions() as session:
        exp = _lock(session, name)
        running = moves.count(session, exp.id, JobStatus.RUNNING)
        if running and not force:
            raise ExperimentStateError(
                f"delete: experiment {name!r} has {running} running job(s); `swarmq cancel {name}` and wait "
                "for them to finish, or pass --force to delete anyway (their results are dropped)"
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
