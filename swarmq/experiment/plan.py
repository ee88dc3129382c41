"""Planning an experiment's jobs (pure): the job rows in publish order, and the seeds every stream and job
derives from the experiment's seeds. Seeds are stable forever: results are keyed by them."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

from swarmq.benchmarks.base import Issue
from swarmq.swarm.routing import HISTORY_ROUTERS, sha_int


def plan_jobs(
    issues: Sequence[Issue],
    conditions: Sequence[str],
    replicates: int,
    orders: Sequence[Sequence[int]] | None = None,
    samples: int = 1,
) -> Iterator[dict[str, Any]]:
    """Job rows in publish order (pure), one at a time so that a large plan is never all in memory. Every job
    starts ``pending``: releases (`queue.jobs.release`) queue them. ``orders[r]`` lists issue indices in
    replicate r's run order (default: the issues' order in every replicate). An issue's ``samples`` share its
    position, last to first: sample 0, which feeds the swarm, after the samples that only observe."""
    seq = 0
    for position in range(len(issues)):
        for replicate in range(replicates):
            issue = issues[orders[replicate][position] if orders is not None else position]
            for sample in reversed(range(samples)):
                for condition in conditions:
                    yield {
                        "condition": condition,
                        "replicate": replicate,
                        "instance_id": issue.instance_id,
                        "position": position,
                        "sample": sample,
                        "seq": seq,
                        "status": "pending",
                    }
                    seq += 1


def replicate_orders(issues: int, replicates: int, seed: int, independent: bool) -> list[list[int]]:
    """Each replicate's issue order: the same for all, or (``shuffle: per_replicate``) a seeded permutation
    per replicate, stable forever like every other seed."""
    orders = []
    for replicate in range(replicates):
        order = list(range(issues))
        if independent:
            random.Random(sha_int(f"swarmq/order/{seed}/{replicate}")).shuffle(order)
        orders.append(order)
    return orders


def design_warnings(routers: dict[str, str], task_types: set[str]) -> list[str]:
    """What makes a planned design unable to show what it is meant to (pure): a router that reads the agents'
    per-type history (affinity, greedy, ucb) meeting issues of one task type cannot specialize at all."""
    if len(task_types) > 1:
        return []
    only = next(iter(task_types), "?")
    return [
        f"condition {name!r} routes by per-type history ({router}) but every issue has task type {only!r}: "
        "routing cannot specialize (declare task types: dataset.categories_file, dataset.task_types: "
        "repo, or dataset.category_map)"
        for name, router in routers.items()
        if router in HISTORY_ROUTERS
    ]


def job_count(issues: int, conditions: int, replicates: int, samples: int = 1) -> int:
    return issues * conditions * replicates * samples


def stream_seed(experiment_seed: int, condition: str, replicate: int) -> int:
    """Seed of one (condition, replicate) stream; stable forever, because results are keyed by it."""
    return sha_int(f"swarmq/stream/{experiment_seed}/{condition}/{replicate}")


def job_seed(base: int, replicate: int, instance_id: str, sample: int = 0) -> int:
    """Sampling seed of a job: the same issue, replicate and sample get the same seed in every condition
    (common random numbers make conditions comparable); sample 0 keeps the seed of a one-sample run, the
    others get seeds of their own. Fits llama.cpp's uint32 seed."""
    key = f"{base}/{replicate}/{instance_id}" + (f"/sample/{sample}" if sample else "")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
