"""Planning an experiment's jobs (pure): the job rows in publish order, and the seeds every stream and job
derives from the experiment's seeds. Seeds are stable forever: results are keyed by them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from swarmq.benchmarks.base import Issue
from swarmq.swarm.routing import sha_int


def plan_jobs(
    issues: Sequence[Issue], conditions: Sequence[str], replicates: int, limits: dict[str, int | None]
) -> list[dict[str, Any]]:
    """Job rows in publish order (pure). Jobs past a stream's in-flight limit start as ``pending``."""
    rows: list[dict[str, Any]] = []
    for position, issue in enumerate(issues):
        for replicate in range(replicates):
            for condition in conditions:
                limit = limits[condition]
                rows.append(
                    {
                        "condition": condition,
                        "replicate": replicate,
                        "instance_id": issue.instance_id,
                        "position": position,
                        "seq": len(rows),
                        "status": "queued" if limit is None or position < limit else "pending",
                    }
                )
    return rows


def stream_seed(experiment_seed: int, condition: str, replicate: int) -> int:
    """Seed of one (condition, replicate) stream; stable forever, because results are keyed by it."""
    return sha_int(f"swarmq/stream/{experiment_seed}/{condition}/{replicate}")


def job_seed(base: int, replicate: int, instance_id: str) -> int:
    """Sampling seed of a job: the same issue and replicate get the same seed in every condition
    (common random numbers make conditions comparable); fits llama.cpp's uint32 seed."""
    digest = hashlib.sha256(f"{base}/{replicate}/{instance_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
