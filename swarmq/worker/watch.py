"""The running message's watch: its jobs' lease heartbeat, and the deadline of the step that runs now.

The leases are renewed every heartbeat interval. At a step's deadline the watch cancels the step
(`cancel.Cancel`, which the generator, the sandbox and the service retries look at), and the runner records
the timeout as the job's outcome. A step that does not stop within `cancel.GRACE_SECONDS` gets the backstop:
its thread is interrupted with `JobTimedOut`, the main thread by a signal, a Celery pool thread (a worker's
every slot) by an asynchronous exception at its next bytecode. A thread stuck in native code cannot
take that either: ``stuck_seconds`` later, ``on_stuck`` fails the job and ends the worker. A hung job never
holds its stream for longer than its deadline plus those margins (and the jobs before it in its message,
with ``jobs_per_message`` above 1: each has its own deadline).

Every watch of the process is looked at by one thread (`_Ticker`), started once, not a thread per job: the
job path stays cheap when jobs are short.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from swarmq.worker.cancel import GRACE_SECONDS, Cancel, CancelKind
from swarmq.worker.shutdown import interrupt_main, interrupt_thread

log = logging.getLogger(__name__)
TICK_SECONDS = 0.25
"""How often the watch looks at the clock: the resolution of deadlines."""


class JobTimedOut(BaseException):
    """A job step ran past its deadline. A BaseException, so no library's ``except Exception`` swallows it."""

    reason = ""
    """The message, for a subclass raised asynchronously in a thread (those are raised without arguments)."""

    def __str__(self) -> str:
        return super().__str__() or self.reason


@dataclass(frozen=True)
class _Step:
    """The armed step: its id (one per `JobWatch.deadline`), what it is, its budget and monotonic deadline,
    and the signal its deadline sets."""

    id: int
    what: str
    budget: float
    deadline: float
    cancel: Cancel | None


class _Ticker:
    """The one thread that ticks every open watch of the process, every `TICK_SECONDS`. A watch's tick (its
    deadline check, an interrupt) runs under the watch's own lock, so that closing a watch waits for a tick in
    progress, and no tick runs after it is closed. Renewals run on threads of their own (`JobWatch.tick`): one
    hung on a Postgres outage does not hold the other watches' deadlines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: set[JobWatch] = set()
        self._thread: threading.Thread | None = None

    def add(self, watch: JobWatch) -> None:
        with self._lock:
            self._watches.add(watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="swarmq-job-watch", daemon=True)
                self._thread.start()

    def remove(self, watch: JobWatch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            with self._lock:
                watches = list(self._watches)
            for watch in watches:
                try:
                    watch.tick()
                except Exception:  # one watch's bug must not stop the others' heartbeats
                    log.exception("job watch tick failed")


_TICKER = _Ticker()


class JobWatch:
    def __init__(
        self,
        renew: Callable[[], bool],
        interval: float,
        on_stuck: Callable[[str], None],
        *,
        stuck_seconds: float,
    ) -> None:
        self._renew, self._interval, self._on_stuck, self._stuck_seconds = (
            renew,
            interval,
            on_stuck,
            stuck_seconds,
        )
        self._lock = threading.Lock()
        self._step: _Step | None = None
        self._steps = 0
        self._ticking = threading.Lock()
        """Held by a tick; `__exit__` takes it to wait for one in progress."""
        self._closed = False
        self._next_beat = 0.0
        self._beating = threading.Lock()
        """Held while a renewal runs: never two at once for one watch."""
        self._cancelled: int | None = None
        self._interrupted: int | None = None

    def __enter__(self) -> JobWatch:
        self._job_thread = threading.get_ident()  # the thread that runs the job's steps
        self._next_beat = time.monotonic() + self._interval
        _TICKER.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _TICKER.remove(self)
        # Wait for a tick in progress (an interrupt being sent; renewals run on their own threads), 5 s at
        # most; no tick starts once closed.
        waited = self._ticking.acquire(timeout=5)
        self._closed = True
        if waited:
            self._ticking.release()

    @contextmanager
    def deadline(self, seconds: float, what: str, cancel: Cancel | None = None) -> Iterator[None]:
        """Arm a deadline of ``seconds`` for the block (a step of the job, run on the job's thread); at the
        deadline ``cancel`` is set, and past the grace the thread is interrupted."""
        with self._lock:
            self._steps += 1
            self._step = _Step(self._steps, what, seconds, time.monotonic() + seconds, cancel)
        try:
            yield
        finally:
            with self._lock:
                self._step = None

    def overdue(self) -> str | None:
        """Why the step now running is as stuck as a job that ends the worker (past its deadline and the
        grace: cancelled, interrupted, still running); None when it is not. `runner.JobRunner._stuck` fails
        such a job with this reason when another one ends the worker first."""
        with self._lock:
            step = self._step
        if step is not None and time.monotonic() > step.deadline + GRACE_SECONDS:
            return f"{step.what} timed out after {step.budget:g} s and did not stop"
        return None

    def _armed(self, step_id: int) -> bool:
        """Called by the interrupt handler on the main thread, possibly while that thread holds ``_lock`` (in
        `deadline`): so no lock here. Reading the one attribute is atomic, and the main thread is the only
        writer that matters (it cannot be arming and handling at once)."""
        step = self._step
        return step is not None and step.id == step_id

    def tick(self) -> None:
        """Look at the clock (`_Ticker`): cancel a step past its deadline, interrupt one past the grace, give
        up on one that does not stop, renew the leases every interval."""
        with self._ticking:
            if self._closed:
                return
            with self._lock:
                step = self._step
            now = time.monotonic()
            if step is not None and now > step.deadline:
                reason = f"{step.what} timed out after {step.budget:g} s"
                if self._cancelled != step.id:
                    self._cancelled = step.id
                    log.warning("%s: cancelling the job", reason)
                    if step.cancel is not None:
                        step.cancel.set(CancelKind.DEADLINE, reason)
                elif now > step.deadline + GRACE_SECONDS and self._interrupted != step.id:
                    self._interrupted = step.id
                    log.warning("%s and did not stop when cancelled: interrupting the job", reason)
                    self._interrupt(reason, partial(self._armed, step.id))
                elif now > step.deadline + GRACE_SECONDS + self._stuck_seconds:
                    self._closed = True
                    self._on_stuck(f"{reason} and did not stop")
                    return
            if now >= self._next_beat and not self._beating.locked():
                # Renewed until the job is declared stuck: a timed-out job keeps its lease while it records
                # its failure, so that it is not delivered again meanwhile. A renewal is a Postgres statement
                # that an outage can hold for long: it runs on a thread of its own (one per heartbeat
                # interval, not per tick), so that the ticker keeps every other watch's deadlines meanwhile.
                self._next_beat = now + self._interval
                self._beating.acquire()
                threading.Thread(target=self._beat, name="swarmq-lease-renewal", daemon=True).start()

    def _interrupt(self, message: str, still_wanted: Callable[[], bool]) -> None:
        if self._job_thread == threading.main_thread().ident:
            interrupt_main(JobTimedOut(message), still_wanted)
        else:
            interrupt_thread(
                self._job_thread, type("JobTimedOut", (JobTimedOut,), {"reason": message}), still_wanted
            )

    def _beat(self) -> None:
        """One renewal (`tick` holds ``_beating`` for it). One that lands after the watch closed changes
        nothing: a lease is renewed only on a running job of this owner."""
        try:
            if not self._renew():
                log.warning("lost the lease on every running job of the message")
        except Exception as exc:  # a blip: the next beat retries; the lease is long enough
            log.warning("heartbeat failed: %s", exc)
        finally:
            self._beating.release()
