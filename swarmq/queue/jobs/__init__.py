"""The jobs table's state machine: every statement that moves a job, each built from `states.TRANSITIONS`.

    pending ──release──▶ queued ──claim──▶ running ──finish──▶ done
                          ▲                   ├──fail / exhaust──▶ failed ──retry──▶ pending
                          ├──requeue──────────┤ (lease expired, attempts left)
                          └──give_back────────┘ (graceful shutdown past its grace period)
    queued ──pause──▶ paused ──resume──▶ queued       pending | queued | paused ──cancel──▶ cancelled

A paused or cancelled experiment (`experiments.state`) moves nothing: `release` queues none of its jobs,
`claim` takes none of its expired leases, and a job that goes back to the queue becomes paused or cancelled
instead (`states.QUEUED_IN`). Pause, resume, cancel and retry move one experiment's jobs (`moves`, run by
`queue.lifecycle`); the others move one job, or a message's jobs, or the expired leases.

Every job that ends has an outcome: `finish` writes the job's own, `fail` and `fail_exhausted` a failure
outcome, in the same transaction. The jobs table is the truth; the broker only carries job ids. Every
transition is one guarded UPDATE, so a second delivery of a job that is leased or done does nothing.

The modules, by concept: `claims` (claim, renew), `ends` (finish, fail), `leases` (give back, requeue,
exhaust), `releases` (release, queued jobs), `moves` (experiment-wide), `work` (what is left, for workers),
and `tables` (what the statements are built from).
"""

from swarmq.queue.jobs.claims import Claimed, Refusal, claim, claim_many, refusal, renew
from swarmq.queue.jobs.ends import Finished, fail, finish, finish_many
from swarmq.queue.jobs.leases import fail_exhausted, give_back, requeue_expired
from swarmq.queue.jobs.releases import mark_published, queued_jobs, release
from swarmq.queue.jobs.tables import Executor, Publishable
from swarmq.queue.jobs.work import experiments_on, unfinished_count, unfinished_models

__all__ = [
    "Claimed",
    "Executor",
    "Finished",
    "Publishable",
    "Refusal",
    "claim",
    "claim_many",
    "experiments_on",
    "fail",
    "fail_exhausted",
    "finish",
    "finish_many",
    "give_back",
    "mark_published",
    "queued_jobs",
    "refusal",
    "release",
    "renew",
    "requeue_expired",
    "unfinished_count",
    "unfinished_models",
]
