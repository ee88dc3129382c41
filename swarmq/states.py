"""Every state a job or an experiment can be in, named once, with the named sets the code asks about, and
the job's state machine: which action moves a job from which status to which (`TRANSITIONS`).

Python code, SQL statements, CHECK constraints and server-side SQL all spell a state through these enums, so
a state is never a bare string in two places (celery's ``states.py``, rq's ``JobStatus``). The statements of
`swarmq.queue.jobs` build their status guards and new statuses from `TRANSITIONS`; tests/test_job_states.py
runs every (status, action) pair against Postgres and compares the result with `next_status`.

Adding a job status: a member of `JobStatus` (and of the named sets it belongs to), its moves in
`TRANSITIONS`, and a migration that widens ``jobs_status_check`` (tests/test_job_states.py compares the
constraint and the partial indexes generated in `store.schema` with the migrated ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class JobStatus(StrEnum):
    PENDING = "pending"
    """Waiting for its stream's turn (strict ordering) or its experiment's release."""
    QUEUED = "queued"
    """Published to the broker; the next worker that receives its message claims it."""
    RUNNING = "running"
    """Leased by a worker until ``lease_expires_at``."""
    DONE = "done"
    """Has its outcome."""
    FAILED = "failed"
    """Gave up (poison job or permanent error), with a failure outcome unless its generation or scoring
    failed in a recorded outcome."""
    PAUSED = "paused"
    """Was queued when its experiment was paused; queued again on resume."""
    CANCELLED = "cancelled"
    """Will never run: its experiment was cancelled."""


INITIAL = JobStatus.PENDING
"""Every job starts pending (`queue.producer`); releases queue it."""
OPEN: frozenset[JobStatus] = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING})
"""Not finished and not held: the experiment still has work."""
IN_FLIGHT: frozenset[JobStatus] = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""Released and not finished: a worker could take it or is running it (a stream's in-flight limit counts
these)."""
FINISHED: frozenset[JobStatus] = frozenset({JobStatus.DONE, JobStatus.FAILED})
"""Terminal with an outcome."""
HELD: frozenset[JobStatus] = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.PAUSED})
"""Not started: what a cancel ends."""


class ExperimentState(StrEnum):
    ACTIVE = "active"
    """Its jobs are released and run."""
    PAUSED = "paused"
    """Nothing is released or claimed until `swarmq resume`."""
    CANCELLED = "cancelled"
    """Final: nothing of it runs again (`swarmq delete` removes it)."""


QUEUED_IN: Mapping[ExperimentState, JobStatus] = MappingProxyType(
    {
        ExperimentState.ACTIVE: JobStatus.QUEUED,
        ExperimentState.PAUSED: JobStatus.PAUSED,
        ExperimentState.CANCELLED: JobStatus.CANCELLED,
    }
)
"""What a job that goes back to the queue becomes in an experiment in each state: a paused experiment holds
it (resume queues it), a cancelled one ends it."""


class JobAction(StrEnum):
    """What moves a job; each is one guarded statement (`TRANSITIONS`)."""

    RELEASE = "release"
    CLAIM = "claim"
    RENEW = "renew"
    FINISH = "finish"
    FAIL = "fail"
    EXHAUST = "exhaust"
    REQUEUE = "requeue"
    GIVE_BACK = "give_back"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"


@dataclass(frozen=True)
class Transition:
    """One action's move: a job in one of ``sources`` whose ``guard`` holds goes to ``target``; any other job
    is left as it is (a second delivery, a lost lease, a stale command do nothing)."""

    sources: frozenset[JobStatus]
    target: JobStatus
    guard: str
    """What else must hold, beside the status, for the statement to move the job."""
    by: str
    """The function that issues the statement."""
    server_side: str | None = None
    """The PL/pgSQL function that writes the new status, where the move runs in Postgres."""
    follows_experiment: bool = False
    """The target is `QUEUED_IN` the job's experiment's state, not ``target`` (which is the active one's)."""
    experiment: ExperimentState | None = None
    """An experiment-wide action's new experiment state (`queue.lifecycle`)."""


def _t(
    sources: Iterable[JobStatus],
    target: JobStatus,
    guard: str,
    by: str,
    *,
    server_side: str | None = None,
    follows_experiment: bool = False,
    experiment: ExperimentState | None = None,
) -> Transition:
    return Transition(frozenset(sources), target, guard, by, server_side, follows_experiment, experiment)


_S = JobStatus
TRANSITIONS: Mapping[JobAction, Transition] = MappingProxyType(
    {
        JobAction.RELEASE: _t(
            [_S.PENDING],
            _S.QUEUED,
            "its experiment is active, its position is within the window above the lowest open one, and "
            "its stream is under its in-flight limit (taken under the experiment's advisory lock)",
            "queue.jobs.release",
            server_side="swarmq_release",
        ),
        JobAction.CLAIM: _t(
            [_S.QUEUED, _S.RUNNING],
            _S.RUNNING,
            "running: leased to the claimant already (its own retry), or its lease expired with attempts "
            "to spare in an active experiment",
            "queue.jobs.claim_many",
        ),
        JobAction.RENEW: _t([_S.RUNNING], _S.RUNNING, "the lease holder renews", "queue.jobs.renew"),
        JobAction.FINISH: _t(
            [_S.RUNNING],
            _S.DONE,
            "the lease holder writes its outcome",
            "queue.jobs.finish_many",
            server_side="swarmq_close",
        ),
        JobAction.FAIL: _t(
            [_S.RUNNING],
            _S.FAILED,
            "the lease holder fails it (an error while running it, or an outcome with an error)",
            "queue.jobs.fail, queue.jobs.finish_many",
            server_side="swarmq_close",
        ),
        JobAction.EXHAUST: _t(
            [_S.RUNNING],
            _S.FAILED,
            "its lease expired and it was claimed max_attempts times (its workers keep dying)",
            "queue.jobs.fail_exhausted (the reaper)",
        ),
        JobAction.REQUEUE: _t(
            [_S.RUNNING],
            _S.QUEUED,
            "its lease expired (its worker died); run after EXHAUST, which takes those out of attempts",
            "queue.jobs.requeue_expired (the reaper)",
            follows_experiment=True,
        ),
        JobAction.GIVE_BACK: _t(
            [_S.RUNNING],
            _S.QUEUED,
            "the lease holder gives it back (graceful shutdown past its grace period)",
            "queue.jobs.give_back",
            follows_experiment=True,
        ),
        JobAction.PAUSE: _t(
            [_S.QUEUED],
            _S.PAUSED,
            "every such job of the experiment, under its lock",
            "queue.lifecycle.pause",
            experiment=ExperimentState.PAUSED,
        ),
        JobAction.RESUME: _t(
            [_S.PAUSED],
            _S.QUEUED,
            "every such job of the experiment, under its lock",
            "queue.lifecycle.resume",
            experiment=ExperimentState.ACTIVE,
        ),
        JobAction.CANCEL: _t(
            HELD,
            _S.CANCELLED,
            "every such job of the experiment, under its lock; running jobs finish",
            "queue.lifecycle.cancel",
            experiment=ExperimentState.CANCELLED,
        ),
        JobAction.RETRY: _t(
            [_S.FAILED],
            _S.PENDING,
            "it never reached an agent (no outcome, or a failure outcome without one); attempts start over",
            "queue.lifecycle.retry_failed",
        ),
    }
)
"""Every move of a job. Nothing else writes ``jobs.status``; a new job is `INITIAL`."""


def next_status(
    status: JobStatus, action: JobAction, experiment: ExperimentState = ExperimentState.ACTIVE
) -> JobStatus | None:
    """The status ``action`` gives a job in ``status`` whose guard holds, its experiment in ``experiment``;
    None: the action leaves such a job as it is."""
    move = TRANSITIONS[action]
    if status not in move.sources:
        return None
    return QUEUED_IN[experiment] if move.follows_experiment else move.target


def ordered(states: Iterable[JobStatus]) -> list[JobStatus]:
    """``states`` in their enum's order: stable SQL text for a set."""
    chosen = set(states)
    return [s for s in JobStatus if s in chosen]


def sql_list(states: Iterable[StrEnum]) -> str:
    """``('a', 'b')``: states as an SQL list literal, in their enum's order, for the IN clauses of
    statements and constraints."""
    chosen = set(states)
    if not chosen:
        raise ValueError("sql_list: no states")
    enum = type(next(iter(chosen)))
    return "(" + ", ".join(f"'{s.value}'" for s in enum if s in chosen) + ")"
