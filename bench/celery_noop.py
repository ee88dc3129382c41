"""Plain Celery on the same broker, for comparison: a no-op task through the same app settings as swarmq's
(`swarmq.queue.broker.make_app`: JSON, late acks, prefetch 1) and a solo-pool worker started the same way.

The task does one Redis INCR so the bench knows when all N are done (and records the first and last times);
that is the only work in it. Worker: ``python -m bench.celery_noop`` (SWARMQ_REDIS_URL names the broker).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import redis as redis_lib
from celery import Celery

from swarmq.queue import broker

QUEUE = "bench.noop"
TASK = "bench.noop"
COUNT, FIRST, LAST = "bench:noop:count", "bench:noop:t0", "bench:noop:t1"
FIRST_CPU, LAST_CPU = "bench:noop:cpu0", "bench:noop:cpu1"
"""The process CPU time of the worker that ran the first and the last task (one worker: its CPU per task)."""

app: Celery = broker.make_app(os.environ.get("SWARMQ_REDIS_URL", "redis://127.0.0.1:6379/14"))
_client: redis_lib.Redis | None = None


def _redis() -> redis_lib.Redis:
    global _client
    if _client is None:
        _client = redis_lib.Redis.from_url(os.environ.get("SWARMQ_REDIS_URL", "redis://127.0.0.1:6379/14"))
    return _client


@app.task(name=TASK, acks_late=True, ignore_result=True)
def noop(total: int) -> None:
    r = _redis()
    n = r.incr(COUNT)
    if n == 1:
        r.mset({FIRST: repr(time.time()), FIRST_CPU: repr(time.process_time())})
    if n == total:
        r.mset({LAST: repr(time.time()), LAST_CPU: repr(time.process_time())})


def publish(total: int, celery_app: Celery = app) -> None:
    """Send ``total`` no-op tasks on one broker connection, as `swarmq.queue.broker.publish` sends jobs."""
    with celery_app.producer_or_acquire() as producer:
        for _ in range(total):
            celery_app.send_task(TASK, args=[total], queue=QUEUE, producer=producer)


def window(client: redis_lib.Redis) -> float | None:
    """Seconds from the first task's start to the last task's end; None until all are done."""
    first, last = client.mget([FIRST, LAST])
    return None if first is None or last is None else float(last) - float(first)


def cpu_ms_per_task(client: redis_lib.Redis, total: int) -> float | None:
    """With one worker: its CPU milliseconds per task between the first task and the last."""
    first, last = client.mget([FIRST_CPU, LAST_CPU])
    return (
        None
        if first is None or last is None or total < 2
        else (float(last) - float(first)) * 1000 / (total - 1)
    )


def reset(client: redis_lib.Redis, keys: Iterable[str] = (COUNT, FIRST, LAST, FIRST_CPU, LAST_CPU)) -> None:
    client.delete(*keys)


def main() -> None:
    import logging

    worker = app.Worker(
        queues=[QUEUE],
        pool_cls="solo",
        concurrency=1,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
        loglevel=logging.WARNING,
        hostname=f"bench-noop-{os.getpid()}@localhost",
    )
    worker.start()


if __name__ == "__main__":
    main()
