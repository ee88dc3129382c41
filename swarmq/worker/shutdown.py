"""Ending a worker: a graceful shutdown on SIGTERM/SIGINT, and `exit_worker` for every other way out.

Exiting is an exception, never ``os._exit`` from deep code: `WorkerExit` derives from Celery's
`WorkerShutdown` (a `SystemExit`, so a `BaseException`): no ``except Exception`` swallows it, Celery's
task tracer and pool let it through, and the worker stops cleanly with its exit code. A thread that must
end the worker (the grace period ran out, Postgres is gone) hands the exception to the main thread with a
signal, since only the main thread runs the Celery loop and the job.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from celery.exceptions import WorkerShutdown

from swarmq.queue import broker, jobs
from swarmq.queue.retry import with_retry
from swarmq.worker.cancel import GRACE_SECONDS

log = logging.getLogger(__name__)
INTERRUPT_SIGNAL = signal.SIGUSR2
"""Carries an exception from a helper thread to the main thread (Celery leaves SIGUSR2 alone)."""
_pending: list[tuple[BaseException, Callable[[], bool]]] = []


class WorkerExit(WorkerShutdown):
    """Stop this worker with exit code ``code`` (0 finished, 1 stopped abruptly, 3 a service is gone)."""


def install_interrupts() -> None:
    """Call once from the main thread, before any helper thread may call `interrupt_main` or `exit_worker`."""

    def _raise(_signum: int, _frame: object) -> None:
        # An exit outranks a job's timeout; what is left waits for the signal sent again here (signals
        # coalesce).
        _pending.sort(key=lambda entry: not isinstance(entry[0], WorkerExit))
        while _pending:
            exc, still_wanted = _pending.pop(0)
            if still_wanted():  # checked here, on the main thread: no race with what it is interrupting
                if _pending:
                    _signal_main()
                raise exc

    signal.signal(INTERRUPT_SIGNAL, _raise)


def interrupt_main(exc: BaseException, still_wanted: Callable[[], bool] = lambda: True) -> None:
    """Raise ``exc`` in the main thread, wherever it is (a syscall included), from a helper thread; dropped
    if ``still_wanted()`` is false by the time the main thread handles it."""
    _pending.append((exc, still_wanted))
    _signal_main()


def _signal_main() -> None:
    main = threading.main_thread().ident
    assert main is not None
    signal.pthread_kill(main, INTERRUPT_SIGNAL)


def interrupt_thread(ident: int, exc_type: type[BaseException], still_wanted: Callable[[], bool]) -> None:
    """Raise ``exc_type`` in another thread that is not the main one (a Celery pool thread running a job) at
    its next bytecode. No signal reaches such a thread, so ``still_wanted`` is checked here, just before, not
    by the receiving thread: the job's step may end in between; the runner treats a late timeout as the job's
    failure."""
    if still_wanted():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))


def exit_worker(code: int, message: str) -> None:
    """Print ``message`` (one line) and end the worker with ``code``, from any thread."""
    print(message, file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        raise WorkerExit(code)
    interrupt_main(WorkerExit(code))


def hard_exit(code: int, message: str) -> None:
    """End the process now, from a helper thread, when the main thread is stuck in native code (a hung
    llama.cpp call) and cannot take an exception. The one place swarmq exits without unwinding: its job was
    already marked failed, and the supervisor restarts the worker."""
    print(message, file=sys.stderr, flush=True)
    os._exit(code)


class _Owner(Protocol):
    @property
    def owner(self) -> str: ...


class _Runner(Protocol):
    """What a shutdown needs of the job runner (`runner.JobRunner`): which jobs run, whose lease it is, and
    how to cancel them."""

    def running(self) -> dict[int, float]: ...
    def cancel_all(self, reason: str) -> None: ...
    @property
    def identity(self) -> _Owner: ...
    @property
    def outage_seconds(self) -> float: ...


BACKSTOP_SECONDS = 10.0
"""After the grace period, how long the worker may take to unwind before it ends without waiting: a job
thread of a ``--slots`` worker (not the main thread) keeps the process alive until its job returns."""


class GracefulShutdown:
    """SIGTERM/SIGINT: finish the running jobs (all slots, up to the grace period), then exit. Past the grace
    period every job still running is given back (queued again), not lost, and cancelled, so that it stops
    where it waits. SIGTERM again changes nothing: one stop often arrives twice (Slurm signals every process
    of its step, and the supervisor passes its own SIGTERM on). A second SIGINT (Ctrl-C) exits at once; the
    leases then expire."""

    def __init__(self, runner: _Runner, sessions: Any, app: Any, grace_seconds: float) -> None:
        self.runner, self.sessions, self.app, self.grace = runner, sessions, app, grace_seconds
        self.signals = 0

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        from celery.worker import state as worker_state

        self.signals += 1
        if self.signals > 1 and signum == signal.SIGTERM:
            log.warning("signal %s again: already stopping (Ctrl-C or SIGINT exits at once)", signum)
            return
        if self.signals > 1:
            exit_worker(1, "swarmq: worker: second signal: exiting now (the running job's lease will expire)")
        running = sorted(self.runner.running())
        what = (
            f"finishing job(s) {', '.join(map(str, running))} (grace {self.grace:.0f} s)"
            if running
            else "no job running"
        )
        log.warning("signal %s: %s, then exiting (SIGINT again to exit at once)", signum, what)
        worker_state.should_stop = 0  # Celery stops once its running tasks return
        if running:
            threading.Thread(target=self._expire, args=(running,), name="swarmq-grace", daemon=True).start()

    def _expire(self, job_ids: list[int]) -> None:
        if self._stopped(job_ids, self.grace):
            return
        # Jobs taken after the signal (a prefetched message) are given back too.
        left = sorted(self.runner.running())
        released = [job_id for job_id in left if self._give_back(job_id)]
        print(
            f"swarmq: worker: grace period over: job(s) {', '.join(map(str, released)) or 'none'} released"
            f"{'' if len(released) == len(left) else ' (the others were not ours)'}",
            file=sys.stderr,
            flush=True,
        )
        self.runner.cancel_all("the worker is stopping past its grace period: the job was given back")
        if self._stopped(left, GRACE_SECONDS):  # Celery stops by itself once its tasks return
            return
        exit_worker(0, "swarmq: worker: job(s) still running after they were cancelled: exiting")
        time.sleep(BACKSTOP_SECONDS - GRACE_SECONDS)
        hard_exit(0, "swarmq: worker: a job thread did not stop after its job was released; exiting")

    def _stopped(self, job_ids: list[int], seconds: float) -> bool:
        """Whether none of ``job_ids`` runs any more, waiting up to ``seconds`` for that."""
        deadline = time.monotonic() + seconds
        while set(job_ids) & set(self.runner.running()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def _give_back(self, job_id: int) -> bool:
        return give_back(
            self.sessions, self.app, job_id, self.runner.identity.owner, self.runner.outage_seconds
        )


def give_back(sessions: Any, app: Any, job_id: int, owner: str, outage_seconds: float) -> bool:
    """Queue a running job of ``owner``'s again and publish it (a shutdown past its grace period; the other
    jobs of a stuck job's message); whether it was still ours."""

    def requeue() -> str | None:
        with sessions() as session:
            return jobs.give_back(session, job_id, owner)

    key = with_retry(requeue, what="give back the job", deadline_seconds=outage_seconds)
    if key is not None:
        broker.publish(app, [(job_id, key)])
    return key is not None
