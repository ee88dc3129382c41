"""How an exception ends a job's step or the job (`attempt.step_error`, `attempt.job_end`), the job's
cancellation (`cancel.Cancel`), and the job watch's deadline: cancel first, interrupt only as a backstop.
No services."""

from __future__ import annotations

import threading
import time

import pytest
from celery.exceptions import WorkerShutdown

from swarmq.benchmarks.sandbox import Cancelled as SandboxCancelled
from swarmq.errors import GenerationCancelled, GenerationError, GenerationTimedOut, ServiceUnavailable
from swarmq.queue.retry import with_retry
from swarmq.worker.attempt import Dropped, Failed, Step, job_end, step_error
from swarmq.worker.cancel import GRACE_SECONDS, Cancel, CancelKind, Cause, JobCancelled
from swarmq.worker.shutdown import WorkerExit
from swarmq.worker.watch import JobTimedOut, JobWatch

DEADLINE = Cause(CancelKind.DEADLINE, "generation timed out after 1 s")
LOST = Cause(CancelKind.LEASE_LOST, "lease taken")
SHUTDOWN = Cause(CancelKind.SHUTDOWN, "given back")


@pytest.mark.parametrize(
    ("exc", "cause", "expected"),
    [
        # The worker's own exit is never a job's end, whatever else holds: WorkerExit is a SystemExit.
        (WorkerExit(0), None, None),
        (WorkerExit(3), LOST, None),
        (ServiceUnavailable("postgres gone"), None, None),
        (ServiceUnavailable("postgres gone"), SHUTDOWN, None),
        # A job that is not ours any more is dropped, whatever it raised on its way out.
        (GenerationCancelled("lease taken"), LOST, Dropped(LOST)),
        (RuntimeError("connection reset"), LOST, Dropped(LOST)),
        (JobCancelled(LOST), None, Dropped(LOST)),
        (JobCancelled(SHUTDOWN), SHUTDOWN, Dropped(SHUTDOWN)),
        # Everything else that code can raise fails the job, with its type and first line.
        (
            RuntimeError("llama_decode returned -3\nsecond line"),
            None,
            Failed("RuntimeError: llama_decode returned -3"),
        ),
        (SystemExit(0), None, Failed("SystemExit: 0")),
        (KeyboardInterrupt(), None, Failed("KeyboardInterrupt: KeyboardInterrupt")),
        (
            JobTimedOut("generation timed out after 1 s"),
            None,
            Failed("JobTimedOut: generation timed out after 1 s"),
        ),
        (JobCancelled(DEADLINE), None, Failed("JobCancelled: generation timed out after 1 s")),
        (
            WorkerShutdown(),
            None,
            Failed("WorkerShutdown: WorkerShutdown"),
        ),  # not ours: a library's SystemExit
        # What no job raises on purpose goes on up.
        (GeneratorExit(), None, None),
    ],
)
def test_job_end(exc: BaseException, cause: Cause | None, expected: Failed | Dropped | None) -> None:
    assert job_end(exc, cause) == expected


@pytest.mark.parametrize(
    ("exc", "cause", "step", "expected"),
    [
        (
            GenerationError("Requested tokens (9000) exceed context window of 2048"),
            None,
            "generation",
            "Requested tokens (9000) exceed context window of 2048",
        ),
        (
            GenerationTimedOut("generation timed out after 1 s"),
            None,
            "generation",
            "generation timed out after 1 s",
        ),
        (GenerationCancelled("generation timed out after 1 s"), DEADLINE, "generation", DEADLINE.reason),
        (SandboxCancelled("scoring timed out after 4000 s"), DEADLINE, "scoring", DEADLINE.reason),
        (
            JobTimedOut("scoring timed out after 4000 s"),
            DEADLINE,
            "scoring",
            "scoring timed out after 4000 s",
        ),
        (JobTimedOut("generation timed out after 1 s"), None, "generation", "generation timed out after 1 s"),
        # Not the step's end: the job's (a lost or given-back job, a bug, a scorer's error) or the worker's.
        (GenerationCancelled("lease taken"), LOST, "generation", None),
        (GenerationTimedOut("generation timed out after 1 s"), SHUTDOWN, "generation", None),
        (GenerationError("a scorer that raises this is a bug"), None, "scoring", None),
        (RuntimeError("boom"), None, "generation", None),
        (RuntimeError("boom"), DEADLINE, "scoring", None),
        (WorkerExit(0), DEADLINE, "generation", None),
        (ServiceUnavailable("redis gone"), DEADLINE, "scoring", None),
    ],
)
def test_step_error(exc: BaseException, cause: Cause | None, step: Step, expected: str | None) -> None:
    assert step_error(exc, cause, step) == expected


def test_the_first_cause_wins_and_reaches_the_children() -> None:
    job = Cancel()
    before = job.child()
    own = job.child()
    assert own.set(CancelKind.DEADLINE, "generation timed out after 1 s")
    assert (job.is_set(), job.reason, own.reason) == (False, "", "generation timed out after 1 s")
    assert job.set(CancelKind.LEASE_LOST, "lease taken")
    assert not job.set(CancelKind.SHUTDOWN, "given back")
    after = job.child()
    assert [c.cause() for c in (job, before, own, after)] == [LOST, LOST, DEADLINE, LOST]
    with pytest.raises(JobCancelled, match="lease taken"):
        job.check()


def test_a_retry_stops_waiting_once_its_job_is_cancelled() -> None:
    """A service call that keeps failing (an outage) waits between tries; a cancel ends the wait at once."""
    cancel, tries = Cancel(), []

    def down() -> None:
        tries.append(time.monotonic())
        if len(tries) == 3:
            threading.Thread(target=cancel.set, args=(CancelKind.LEASE_LOST, "lease taken")).start()
        raise ConnectionError("connection refused")

    started = time.monotonic()
    with pytest.raises(JobCancelled, match="lease taken"):
        with_retry(down, what="swarm state", deadline_seconds=60, sleep=cancel.sleep)
    assert len(tries) == 3 and time.monotonic() - started < 5  # the backoff after try 3 alone is 1 s


def run_step(watch_seconds: float, body: object) -> tuple[list[str], Cancel, float]:
    """Run ``body(step)`` under a job watch's deadline on a thread of its own (as a --slots job runs)."""
    seen: list[str] = []
    step = Cancel()

    def job() -> None:
        with JobWatch(lambda: True, 60, seen.append, stuck_seconds=60) as watch:
            try:
                with watch.deadline(watch_seconds, "generation", step):
                    body(step)  # type: ignore[operator]
            except JobTimedOut as exc:
                seen.append(f"interrupted: {exc}")

    started = time.monotonic()
    thread = threading.Thread(target=job)
    thread.start()
    thread.join(30)
    return seen, step, time.monotonic() - started


def test_a_deadline_cancels_the_step_before_any_interrupt() -> None:
    def cooperative(step: Cancel) -> None:
        while not step.is_set():
            time.sleep(0.01)

    seen, step, seconds = run_step(0.3, cooperative)
    assert seen == [] and step.cause() == Cause(CancelKind.DEADLINE, "generation timed out after 0.3 s")
    assert seconds < 0.3 + GRACE_SECONDS


def test_a_step_that_ignores_its_cancel_is_interrupted_after_the_grace() -> None:
    def deaf(step: Cancel) -> None:
        while True:
            time.sleep(0.01)

    seen, step, seconds = run_step(0.3, deaf)
    assert seen == ["interrupted: generation timed out after 0.3 s"]
    assert step.is_set() and 0.3 + GRACE_SECONDS < seconds < 0.3 + GRACE_SECONDS + 2
