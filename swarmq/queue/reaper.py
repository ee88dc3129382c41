"""The reaper: part of every worker. The jobs table is the truth; the broker is only a transport.

Each pass (one worker at a time, by a short-lived lock in Redis):
- jobs whose lease expired (their worker died) are queued again, or failed once they used max_attempts;
- swarm updates left half-done (a worker died between its outcome write and its Redis update) are finished;
- experiments with pending jobs and none in flight are released (e.g. a worker died after its outcome write);
- queued jobs missing from the broker (Redis restarted empty) are published again.
A second delivery of a job is harmless: claiming is atomic in Postgres. Paused and cancelled experiments
(`lifecycle`) are left alone: nothing of theirs is released or published again.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis as redis_lib
from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from swarmq import keys
from swarmq.experiment.config import ExperimentConfig
from swarmq.queue import broker, jobs
from swarmq.queue.dispatch import release_next
from swarmq.queue.messages import BadMessage, job_ids
from swarmq.states import IN_FLIGHT, ExperimentState, JobStatus, sql_list
from swarmq.store.outcomes import unapplied_streams

log = logging.getLogger(__name__)
# The states are literals in the SQL, not parameters: a prepared statement's generic plan can then use the
# partial indexes on pending and in-flight jobs (migrations 0002, 0005), which keep these queries cheap
# however many finished jobs the table holds.
_ACTIVE = sql_list([ExperimentState.ACTIVE])
_QUEUED = sql_list([JobStatus.QUEUED])
_STALLED = text(
    f"SELECT e.id, e.config, e.model_key FROM experiments e WHERE e.state IN {_ACTIVE} "
    "AND EXISTS (SELECT 1 FROM jobs p WHERE p.experiment_id = e.id "
    f"AND p.status IN {sql_list([JobStatus.PENDING])}) "
    "AND NOT EXISTS (SELECT 1 FROM jobs k WHERE k.experiment_id = e.id "
    f"AND k.status IN {sql_list(IN_FLIGHT)})"
)
"""Experiments with pending jobs and nothing in flight (`_release_stalled`)."""
_OLD_QUEUED = text(
    "SELECT j.id, j.model_key, coalesce((e.config->>'jobs_per_message')::int, 1) FROM jobs j "
    f"JOIN experiments e ON e.id = j.experiment_id WHERE j.status IN {_QUEUED} AND e.state IN {_ACTIVE} "
    "AND j.published_at < now() - make_interval(secs => :g)"
)
"""Queued jobs of active experiments published more than ``g`` seconds ago (`_republish_missing`)."""
_STILL_QUEUED = text(f"SELECT id FROM jobs WHERE id = ANY(:ids) AND status IN {_QUEUED}")
CompleteStream = Callable[[int, str, int], None]
"""Finishes a stream's half-applied swarm updates (`streams.sync.StreamSync.complete_stream`)."""


@dataclass
class ReapResult:
    requeued: int = 0
    failed: int = 0
    released: int = 0
    republished: int = 0
    completed: int = 0


def reap(
    sessions: sessionmaker[Session],
    app: Celery,
    redis: redis_lib.Redis,
    *,
    max_attempts: int,
    grace_seconds: float,
    complete_stream: CompleteStream | None = None,
) -> ReapResult:
    result = ReapResult()
    # One pass per interval across all workers: the lock lives as long as the interval.
    if not redis.set(keys.REAPER_LOCK, "1", nx=True, px=max(100, int(grace_seconds * 500))):
        return result
    with sessions() as session:
        result.failed = len(jobs.fail_exhausted(session, max_attempts))
        requeued = jobs.requeue_expired(session)
        session.commit()
        result.requeued = len(requeued)
        for job_id, _key in requeued:
            log.warning("job=%s lease expired: queued again", job_id)
        broker.publish(app, requeued)
        if complete_stream is not None:
            result.completed = complete_unapplied(session, complete_stream, grace_seconds)
        result.released = _release_stalled(sessions, session, app)
        result.republished = _republish_missing(session, app, redis, grace_seconds)
    return result


def complete_unapplied(
    session: Session, complete_stream: CompleteStream, older_than_seconds: float, model_key: str | None = None
) -> int:
    """Finish the swarm updates of outcomes written more than ``older_than_seconds`` ago but never applied."""
    streams = unapplied_streams(session, older_than_seconds=older_than_seconds, model_key=model_key)
    for exp_id, condition, replicate in streams:
        complete_stream(exp_id, condition, replicate)
    return len(streams)


def _release_stalled(sessions: sessionmaker[Session], session: Session, app: Celery) -> int:
    """Experiments with pending jobs and nothing in flight (a worker died between its outcome and the release
    that follows): nobody else would release them. Releases are experiment-wide (`jobs.release`), so an
    experiment with any job in flight is moved on by that job's worker."""
    rows = session.execute(_STALLED).all()
    return sum(
        release_next(sessions, app, exp_id, ExperimentConfig.stored(config)) for exp_id, config, _key in rows
    )


def _republish_missing(session: Session, app: Celery, redis: redis_lib.Redis, grace_seconds: float) -> int:
    """Queued jobs (published more than ``grace_seconds`` ago) that are not in their model's queue.

    A queue whose messages could carry its old queued jobs (as many messages, or fewer of several jobs each:
    ``jobs_per_message``) is taken as complete without reading it (the common case of a long, healthy queue);
    once it drains below that, it is read and the missing jobs found (`broker_job_ids`). Jobs are published
    again one to a message."""
    rows = session.execute(_OLD_QUEUED, {"g": grace_seconds}).all()
    if not rows:
        return 0
    per_key: dict[str, int] = {}
    per_message: dict[str, int] = {}
    for _, k, size in rows:
        per_key[str(k)] = per_key.get(str(k), 0) + 1
        per_message[str(k)] = max(per_message.get(str(k), 1), int(size))
    suspect = {k for k, n in per_key.items() if redis.llen(keys.queue_name(k)) * per_message[k] < n}
    if not suspect:
        return 0
    in_broker = broker_job_ids(redis, suspect)
    missing = [(int(j), str(k)) for j, k, _ in rows if str(k) in suspect and int(j) not in in_broker]
    if missing:  # a job delivered (and claimed) between the two reads is not missing
        still = set(session.execute(_STILL_QUEUED, {"ids": [j for j, _ in missing]}).scalars())
        missing = [(j, k) for j, k in missing if j in still]
    if missing:
        jobs.mark_published(session, [j for j, _ in missing])
        log.warning("%d queued jobs were missing from the broker: published again", len(missing))
    return broker.publish(app, missing)


def broker_job_ids(redis: redis_lib.Redis, model_keys: set[str]) -> set[int]:
    """Job ids carried by the messages waiting in the models' queues (kombu's Redis layout: one list per
    queue), batches included (`message_job_ids`).

    Delivered-but-unacked messages do not count: a job that is still ``queued`` in Postgres well after its
    delivery was never claimed (its worker died or released it), so its message is an orphan.
    """
    ids: set[int] = set()
    for key in model_keys:
        for raw in redis.lrange(keys.queue_name(key), 0, -1):
            ids.update(message_job_ids(raw))
    return ids


def drop_tasks(redis: redis_lib.Redis, jobs_: list[tuple[int, str]]) -> int:
    """Take these (job id, model key) jobs' messages out of their models' queues (a paused, cancelled or
    deleted experiment's). A message goes when any of its jobs is among them: a batch carries one release of
    one experiment (`broker.publish`), whose jobs a pause, cancel or delete moves together. Should a batch
    ever carry another job, that job, still ``queued``, is published again by the reaper
    (`_republish_missing`).

    Returns how many jobs the removed messages carried; callers (`lifecycle`) do not use it. Delivered
    messages are beyond reach, and dropped by the claim."""
    n = 0
    for model_key in sorted({k for _, k in jobs_}):
        wanted = {j for j, k in jobs_ if k == model_key}
        queue = keys.queue_name(model_key)
        for raw in redis.lrange(queue, 0, -1):
            carried = message_job_ids(raw)
            if not wanted.isdisjoint(carried):
                # bytes: redis-py sends them as is
                removed = int(redis.lrem(queue, 1, raw))  # type: ignore[arg-type]
                n += removed * len(carried)
    return n


def message_job_ids(raw: bytes | str) -> list[int]:
    """The job ids one raw queue entry carries; [] for anything that is not a swarmq job message.

    kombu's Redis transport stores a message as JSON whose ``body`` (base64 when ``properties.body_encoding``
    says so) is Celery's protocol-2 body ``[args, kwargs, embed]``; ``args[0]`` is a job id (one job) or a
    list of them (a batch, `broker.publish`). A body that cannot be read falls back to the task id, which
    names the message's first job (`keys.task_id`)."""
    try:
        msg = json.loads(raw)
    except ValueError:  # includes a UnicodeDecodeError
        return []
    headers = msg.get("headers") if isinstance(msg, dict) else None
    if not isinstance(headers, dict) or headers.get("task") != keys.TASK_NAME:
        return []
    from_body = _body_job_ids(msg)
    if from_body is not None:
        return from_body
    props = msg.get("properties")
    tid = headers.get("id") or (props.get("correlation_id") if isinstance(props, dict) else None)
    first = keys.task_job_id(tid) if isinstance(tid, str) else None
    return [] if first is None else [first]


def _body_job_ids(msg: dict[str, Any]) -> list[int] | None:
    """``args[0]`` of a message's body as job ids, by the queue's rule (`messages.job_ids`); None when the
    body cannot be read as one or several."""
    props = msg.get("properties")
    try:
        body = msg["body"]
        if isinstance(props, dict) and props.get("body_encoding") == "base64":
            body = base64.b64decode(body, validate=True)
        return job_ids(json.loads(body)[0][0])
    except (ValueError, TypeError, LookupError, BadMessage):  # binascii.Error is a ValueError
        return None
