"""Releasing an experiment's next jobs and publishing them: the one place streams move forward.

A worker finishing (or failing) a job, the reaper unsticking an experiment, `lifecycle` (resume, retry) and
the producer (enqueue, and enqueue again to resume) all release through here: `release_next`, or
`next_jobs` then `publish` where the caller says what it publishes first. The jobs-table rule is
`jobs.release`, the transport `broker.publish`. Jobs that are queued already and go out again (a resume's
paused jobs, a lease given back or expired, a message the broker lost) are published by `broker.publish`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from celery import Celery

from swarmq.experiment.config import ExperimentConfig
from swarmq.queue import broker, jobs
from swarmq.store.outcomes import AppliedMark


def next_jobs(
    session: jobs.Executor,
    experiment_id: int,
    config: ExperimentConfig,
    *,
    relaxed: bool = False,
    applied: Sequence[AppliedMark] = (),
    every_queued: bool = False,
) -> jobs.Publishable:
    """Queue the experiment's next pending jobs (in-flight limits, position window); the jobs to publish, in
    publish order: those released, or with ``every_queued`` every queued job of the experiment (a resumed
    enqueue sends them again in case the broker lost them; a second delivery is dropped by the claim).
    ``relaxed`` and ``applied``: see `jobs.release`."""
    released = jobs.release(
        session,
        experiment_id,
        config.in_flight_limits(),
        config.max_spread,
        relaxed=relaxed,
        applied=applied,
    )
    return jobs.queued_jobs(session, experiment_id) if every_queued else released


def publish(app: Celery, released: jobs.Publishable, config: ExperimentConfig) -> int:
    """Send `next_jobs`' jobs to their models' queues, ``jobs_per_message`` to a message; how many."""
    return broker.publish(app, released, per_message=config.jobs_per_message) if released else 0


def release_next(
    sessions: Callable[[], AbstractContextManager[jobs.Executor]],
    app: Celery,
    experiment_id: int,
    config: ExperimentConfig,
    *,
    relaxed: bool = False,
    applied: Sequence[AppliedMark] = (),
) -> int:
    """`next_jobs` in a session of its own, then `publish`; returns how many were published. ``sessions``: a
    sessionmaker, or a worker's autocommit connections (`store.db.autocommit_connections`)."""
    with sessions() as session:
        released = next_jobs(session, experiment_id, config, relaxed=relaxed, applied=applied)
    return publish(app, released, config)
