"""Every name swarmq gives to shared things: Redis keys, Celery queues and task ids, Postgres advisory locks.

One place, so that a key is never spelled two ways and a test can find it without copying a literal.
"""

from __future__ import annotations

import re

PREFIX = "swarmq:"
STREAM_PREFIX = f"{PREFIX}stream:"
"""Swarm state of one stream: ``swarmq:stream:{<experiment>#<id>/<condition>/<replicate>}:<part>``."""
WORKER_PREFIX = f"{PREFIX}worker:"
"""A worker's heartbeat hash (what `swarmq workers list` reads)."""
REAPER_LOCK = f"{PREFIX}reaper:lock"
"""Held for one reaper interval so that one worker at a time reaps."""

TASK_NAME = "swarmq.run_job"
DEFAULT_QUEUE = "swarmq.default"
QUEUE_PREFIX = "swarmq."

MIGRATION_LOCK = 72_731_001
"""Advisory lock id held while migrations run (two processes upgrading at once must not interleave)."""


def stream_key(experiment: str, experiment_id: int, condition: str, replicate: int, part: str) -> str:
    """One part (meta, hist, applied, inflight, buf:<agent>) of a stream's state. The braces are a Redis
    Cluster hash tag: all keys of a stream live in one slot, so one Lua script may touch them all. The
    experiment id is part of it: an experiment deleted and enqueued again never inherits old state."""
    return f"{STREAM_PREFIX}{{{experiment}#{experiment_id}/{condition}/{replicate}}}:{part}"


def worker_key(name: str) -> str:
    return f"{WORKER_PREFIX}{name}"


def worker_name_key(name: str) -> str:
    """A worker name's lease: one process per name (`worker.naming`)."""
    return f"{PREFIX}worker-name:{name}"


def model_key(model_path: str) -> str:
    """Queue key of a model: its file name, so workers on machines with other paths still match."""
    name = model_path.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:180]


def queue_name(model_key: str) -> str:
    """Each model has its own queue: a worker consumes only jobs for the model it holds."""
    return f"{QUEUE_PREFIX}{model_key}"


TASK_ID_PREFIX = "job-"


def task_id(job_id: int) -> str:
    """Celery task id of a job's message, or of a batch message whose first job it is (`broker.publish`): one
    id per message. The reaper reads a message's job ids from its body, and from this id when it cannot."""
    return f"{TASK_ID_PREFIX}{job_id}"


def task_job_id(task_id_: str) -> int | None:
    """The job id a `task_id` names (a batch message's first job); None for a task id that is not swarmq's."""
    digits = task_id_.removeprefix(TASK_ID_PREFIX)
    return int(digits) if digits != task_id_ and digits.isascii() and digits.isdigit() else None


def release_lock(experiment_id: int) -> str:
    """Advisory lock (hashed) serialising releases of one experiment's pending jobs."""
    return f"release/{experiment_id}"


def experiment_lock(name: str) -> str:
    """Advisory lock (hashed): one producer per experiment name at a time."""
    return f"experiment/{name}"
