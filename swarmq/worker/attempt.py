"""One job's attempt on this worker, as the runner records it, and how an exception ends it.

A claimed job's state moves from `PENDING` to `RUNNING` (its steps run now: what a stuck step is blamed on),
then to one of: `Judged` (a verdict, its generation error included: an outcome row to write), `Failed` (an
unexpected error: the job fails with the reason), `Dropped` (no longer this worker's: its lease was lost, or a
shutdown gave it back), or `Stuck` (a step that could not be stopped: the worker ends). The message's end
(`plan.plan_end`) is decided from these states alone. `Message` keeps them, per message in flight.

Which exceptions end what is decided in two pure functions, not by the order of ``except`` clauses:
`step_error` (what ends only a generation or a scoring step) and `job_end` (what ends the job, and what is
not the job's to handle: the worker's own exit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from swarmq.benchmarks.base import Issue
from swarmq.benchmarks.sandbox import Cancelled as SandboxCancelled
from swarmq.errors import GenerationCancelled, GenerationError, ServiceUnavailable, first_line
from swarmq.queue import jobs
from swarmq.streams.sync import ExperimentInfo
from swarmq.worker.cancel import Cancel, CancelKind, Cause, JobCancelled
from swarmq.worker.planning import JobPlan, Verdict
from swarmq.worker.shutdown import WorkerExit
from swarmq.worker.watch import JobTimedOut, JobWatch


@dataclass(frozen=True)
class Pending:
    """Claimed, not started."""


@dataclass(frozen=True)
class Running:
    """Its steps run now."""


PENDING, RUNNING = Pending(), Running()


@dataclass(frozen=True)
class Judged:
    """Ran to its verdict (a generation error is one): its outcome row waits for the message's end."""

    info: ExperimentInfo
    issue: Issue
    plan: JobPlan
    verdict: Verdict
    record: dict[str, Any]
    """The outcome row (`planning.outcome_record`)."""
    started: float
    """`time.perf_counter` when the job started."""


@dataclass(frozen=True)
class Failed:
    """An unexpected error (a bug, a library error, code that tried to exit): the job fails with
    ``reason``."""

    reason: str


@dataclass(frozen=True)
class Dropped:
    """Not this worker's any more: the result, if any, is not written."""

    cause: Cause


@dataclass(frozen=True)
class Stuck:
    """A step ran past its deadline and could not be stopped: the job fails, the worker ends."""

    reason: str


State = Pending | Running | Judged | Failed | Dropped | Stuck


@dataclass(frozen=True)
class Attempt:
    job: jobs.Claimed
    state: State


@dataclass
class Message:
    """One message's jobs in flight on this worker: each job's cancellation and attempt state, and which jobs
    its end has closed. Kept per message: a worker with ``--slots K`` runs K messages at once, one per Celery
    thread."""

    claimed: list[jobs.Claimed]
    started: float
    """Epoch seconds of the claim."""
    cancels: dict[int, Cancel]
    states: dict[int, State]
    closed: set[int] = field(default_factory=set)
    """Jobs whose outcome row or failure is written."""
    status: dict[int, str] = field(default_factory=dict)
    """Per job: done, failed or dropped, as its end goes."""
    watch: JobWatch | None = None

    @classmethod
    def of(cls, claimed: list[jobs.Claimed]) -> Message:
        ids = [j.id for j in claimed]
        return cls(claimed, time.time(), {i: Cancel() for i in ids}, dict.fromkeys(ids, PENDING))

    def attempts(self) -> list[Attempt]:
        return [Attempt(j, self.states[j.id]) for j in self.claimed]

    def fail_open(self, end: Failed) -> list[int]:
        """Record ``end`` for every job neither closed nor dropped; those jobs."""
        failing = [i for i, s in self.states.items() if i not in self.closed and not isinstance(s, Dropped)]
        self.states.update(dict.fromkeys(failing, end))
        return failing

    def open(self) -> list[int]:
        """Jobs neither closed nor cancelled (lost, given back): the leases a renewal extends."""
        return [j.id for j in self.claimed if j.id not in self.closed and not self.cancels[j.id].is_set()]


WORKER_EXITS: tuple[type[BaseException], ...] = (WorkerExit, ServiceUnavailable)
"""The worker is ending (a shutdown, a service gone past the outage limit): not a job's failure. The jobs'
leases expire or were given back, and another worker takes them. `WorkerExit` is a `SystemExit`, which a job
that raises it by itself fails with: hence the explicit test before any other."""
JOB_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, KeyboardInterrupt, JobTimedOut)
"""What fails the job it was raised in: bugs, library errors, code that tried to end the process, and a
deadline's backstop (`JobTimedOut`) landing outside the step it was meant for."""
Step = Literal["generation", "scoring"]


def step_error(exc: BaseException, cause: Cause | None, step: Step) -> str | None:
    """The reason, when ``exc`` ends only this step (the runner records a generation error outcome, or an
    unjudged score); None when it ends the job, or more (`job_end` decides). ``cause`` is the step's
    cancellation, if it was cancelled."""
    if isinstance(exc, WORKER_EXITS) or (cause is not None and cause.kind is not CancelKind.DEADLINE):
        return None  # a lost or given-back job, or a worker that exits, is more than this step's end
    if isinstance(exc, JobTimedOut):  # the deadline's backstop landed in its step
        return str(exc)
    if cause is not None and isinstance(exc, (GenerationCancelled, SandboxCancelled, JobCancelled)):
        return cause.reason  # stopped at its deadline, cooperatively
    if step == "generation" and isinstance(exc, GenerationError):  # e.g. a prompt longer than n_ctx
        return str(exc)
    return None


def job_end(exc: BaseException, cause: Cause | None) -> Failed | Dropped | None:
    """How ``exc`` ends the job it was raised in; None when it is not the job's to handle (the worker exits:
    re-raise it). ``cause`` is the job's cancellation, if it was cancelled."""
    if isinstance(exc, WORKER_EXITS):
        return None
    if cause is not None and cause.kind is not CancelKind.DEADLINE:
        return Dropped(cause)  # whatever it raised on its way out: the job is not ours
    if isinstance(exc, JobCancelled) and exc.cause.kind is not CancelKind.DEADLINE:
        return Dropped(exc.cause)
    if isinstance(exc, JOB_ERRORS):
        return Failed(f"{type(exc).__name__}: {first_line(exc)}")
    return None
