"""Releasing an experiment's next jobs and publishing them: the one place streams move forward.

A worker finishing (or failing) a job, the reaper unsticking an experiment and the producer (enqueue and
resume) all call `release_next`; the jobs-table rule is `jobs.release`, the transport `broker.publish`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from celery import Celery

from swarmq.experiment.config import ExperimentConfig
from swarmq.queue import broker, jobs
from swarmq.store.outcomes import AppliedMark


def release_next(
    sessions: Callable[[], AbstractContextManager[jobs.Executor]],
    app: Celery,
    experiment_id: int,
    config: ExperimentConfig,
    *,
    relaxed: bool = False,
    applied: Sequence[AppliedMark] = (),
) -> int:
    """Queue the experiment's next pending jobs (in-flight limits, position window), then publish each to its
    model's queue; returns how many were published. ``sessions``: a sessionmaker, or a worker's autocommit
    connections (`store.db.autocommit_connections`). ``relaxed`` and ``applied``: see `jobs.release`."""
    with sessions() as session:
        released = jobs.release(
            session,
            experiment_id,
            config.in_flight_limits(),
            config.max_spread,
            relaxed=relaxed,
            applied=applied,
        )
    return broker.publish(app, released, per_message=config.jobs_per_message) if released else 0
