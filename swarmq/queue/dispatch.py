"""Releasing a stream's next jobs and publishing them: the one place a stream moves forward.

A worker finishing (or failing) a job, the reaper unsticking a stream and a resumed experiment all call
`release_next`; the jobs-table rule is `jobs.release`, the transport `broker.publish`.
"""

from __future__ import annotations

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from swarmq.queue import broker, jobs
from swarmq.store.outcomes import StreamId


def release_next(sessions: sessionmaker[Session], app: Celery, stream: StreamId, limit: int | None,
                 model_key: str) -> int:  # fmt: skip
    """Queue the stream's next pending jobs up to ``limit`` in flight (None: all), then publish them;
    returns how many were published."""
    with sessions() as session:
        ids = jobs.release(session, stream, limit)
    return broker.publish(app, ((i, model_key) for i in ids)) if ids else 0
