"""The broker: a Celery app on Redis. It is only a transport; job ownership lives in Postgres.

JSON only (never pickle), late acks, prefetch 1: a worker holds at most one message it has not finished (one
job, or a batch of them: `publish`).
The visibility timeout is long on purpose: redelivery of abandoned jobs is the reaper's business (it reads
leases in Postgres), so a long generation is never delivered twice by the broker (celery #5935, #5306).
`celery -A swarmq.queue.broker inspect active` and Flower see swarmq workers like any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from celery import Celery

from swarmq import keys
from swarmq.queue import transport
from swarmq.settings import DEFAULTS

VISIBILITY_TIMEOUT = 7 * 24 * 3600


def kombu_url(redis_url: str) -> str:
    """redis-py spells unix sockets ``unix://path?db=N``; kombu spells them
    ``<transport>+socket://path?virtual_host=N`` (kombu ignores ``db`` there, and the queues would land in db
    0 while the swarm state is in db N). The transport is swarmq's (`transport.ALIAS`)."""
    if not redis_url.startswith("unix://"):
        return redis_url
    path, _, query = redis_url[len("unix://") :].partition("?")
    params = [
        p.replace("db=", "virtual_host=", 1) if p.startswith("db=") else p for p in query.split("&") if p
    ]
    return f"{transport.ALIAS}+socket://" + path + ("?" + "&".join(params) if params else "")


def make_app(redis_url: str, *, outage_seconds: float = DEFAULTS.outage_seconds) -> Celery:
    """The Celery app on ``redis_url``. Plain ``redis://`` and unix-socket URLs use swarmq's transport, which
    discards queue entries it cannot read (`transport`); every worker's consumer rides out broker outages
    shorter than ``outage_seconds`` (`consumer`)."""
    app = Celery("swarmq", broker=kombu_url(redis_url))
    if redis_url.startswith("redis://"):
        app.conf.broker_transport = transport.ALIAS
    app.conf.update(
        worker_consumer="swarmq.queue.consumer:Consumer",
        swarmq_outage_seconds=outage_seconds,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        task_default_queue=keys.DEFAULT_QUEUE,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def publish(app: Celery, jobs: Iterable[tuple[int, str]], *, per_message: int = 1) -> int:
    """Publish ``(job_id, model_key)`` pairs on one broker connection; returns how many JOBS were sent.

    A message's cost (its delivery, its ack, Celery's tracer around the task) is paid per message, whatever it
    carries: jobs that take milliseconds share it by travelling ``per_message`` to a message (`messages`). A
    message of one job has ``args=[job_id]``; a batch has ``args=[[job_id, ...]]``; either's task id is its
    first job's (`keys.task_id`). A message only ever carries jobs that one release of one experiment queued:
    the callers that batch pass one experiment's released jobs (`queue.dispatch.release_next`, the producer),
    the others keep one job a message. `reaper.drop_tasks`, which takes a whole message out of its queue for
    any of its jobs, relies on it."""
    n = 0
    declared: set[str] = set()
    with app.producer_or_acquire() as producer:
        # kombu >= 5.7 pipelines the sends (one Redis round trip per batch instead of per message).
        batch = producer.batch(500) if hasattr(producer, "batch") else contextlib.nullcontext()
        with batch:
            for key, ids in messages(jobs, per_message):
                queue = keys.queue_name(key)
                # Celery declares the queue again with every message (declare=None) unless given a list: the
                # first message of each queue declares it, the rest skip the declaration's round trip.
                declare: list[Any] | None = [] if queue in declared else None
                declared.add(queue)
                app.send_task(
                    keys.TASK_NAME,
                    args=message_args(ids),
                    queue=queue,
                    producer=producer,
                    task_id=keys.task_id(ids[0]),
                    declare=declare,
                )
                n += len(ids)
    return n


def messages(jobs: Iterable[tuple[int, str]], per_message: int) -> Iterator[tuple[str, list[int]]]:
    """``(model_key, job_ids)`` of each message, in publish order: runs of consecutive pairs of one model key,
    cut every ``per_message`` jobs. Only consecutive pairs are grouped, so jobs leave in the order given."""
    if per_message < 1:
        raise ValueError(f"per_message must be at least 1, not {per_message}")
    key = ""
    ids: list[int] = []
    for job_id, job_key in jobs:
        if ids and (job_key != key or len(ids) == per_message):
            yield key, ids
            ids = []
        key = job_key
        ids.append(job_id)
    if ids:
        yield key, ids


def message_args(job_ids: list[int]) -> list[Any]:
    """A message's positional arguments: ``[job_id]`` for one job, ``[[job_id, ...]]`` for a batch; workers
    and the reaper read both."""
    return [job_ids[0]] if len(job_ids) == 1 else [list(job_ids)]


_app: Celery | None = None


def model_queues(redis: Any) -> list[str]:
    """The model queues that hold messages now (kombu keeps each queue as a Redis list under its name)."""
    found = {
        k.decode() if isinstance(k, bytes) else str(k) for k in redis.scan_iter(match=f"{keys.QUEUE_PREFIX}*")
    }
    return sorted(q for q in found if redis.type(q) in (b"list", "list"))


def __getattr__(name: str) -> Any:
    """``celery -A swarmq.queue.broker`` finds ``app`` here, configured from the same settings as swarmq and
    knowing every model queue that holds messages, so that ``purge`` and ``inspect`` see them. (To stop an
    experiment, use `swarmq pause` or `swarmq cancel`: jobs purged behind swarmq's back are still queued in
    Postgres, and the reaper publishes them again.)"""
    global _app
    if name in ("app", "celery"):
        if _app is None:
            import redis as redis_lib
            from kombu import Queue

            from swarmq.settings import get_settings
            from swarmq.store.services import redis_url

            url = redis_url(get_settings())
            _app = make_app(url)
            names = [keys.DEFAULT_QUEUE, *model_queues(redis_lib.Redis.from_url(url))]
            _app.conf.task_queues = [Queue(q) for q in dict.fromkeys(names)]
        return _app
    raise AttributeError(name)
