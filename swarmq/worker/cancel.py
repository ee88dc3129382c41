"""Cooperative cancellation of a running job: a `Cancel` is the `model.base.CancelSignal` a runner gives a
job's generation, and what its sandbox run and its service-call retries look at.

A job has one `Cancel` for its whole attempt (set when its lease is lost, or when the worker shuts down
past its grace period) and one child per deadline step (set by the job watch at the step's deadline, or by
its parent). The first cause set is the one kept: the runner tells a timed-out step (the job's error
outcome) from a lost job (its result dropped) by that `Cause`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum

GRACE_SECONDS = 2.0
"""After a job is cancelled, how long it has to stop by itself before the worker interrupts it with an
injected exception (the backstop: `watch.JobTimedOut` at a deadline, `shutdown.WorkerExit` at a shutdown)."""


class CancelKind(StrEnum):
    DEADLINE = "deadline"
    """A step of the job ran past its deadline: the step ends, the job records why."""
    LEASE_LOST = "lease lost"
    """The job is no longer this worker's: its result is dropped."""
    SHUTDOWN = "shutdown"
    """The worker is stopping and gave the job back (queued again): its result is dropped."""


@dataclass(frozen=True)
class Cause:
    kind: CancelKind
    reason: str
    """One line a user can act on, e.g. ``generation timed out after 60 s``."""


class JobCancelled(Exception):
    """Raised by the worker's own waits (`Cancel.check`, `Cancel.sleep`) once the job is cancelled."""

    def __init__(self, cause: Cause) -> None:
        super().__init__(cause.reason)
        self.cause = cause


class Cancel:
    """A job's (or a step's) cancellation over a `threading.Event`. The first cause wins; a parent's cause
    reaches its children (`child`) that have none of their own."""

    reason: str
    """The cause's reason ("" while it runs on): what a generator raises `GenerationCancelled` with."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._cause: Cause | None = None
        self._children: list[Cancel] = []
        self.reason = ""

    def child(self) -> Cancel:
        """A step's signal: set by its own deadline, or by this one (at once if this one is set)."""
        child = Cancel()
        with self._lock:
            self._children.append(child)
            cause = self._cause
        if cause is not None:
            child.set(cause.kind, cause.reason)
        return child

    def set(self, kind: CancelKind, reason: str) -> bool:
        """Cancel with ``reason``; False when a cause was already set (it stays)."""
        with self._lock:
            if self._cause is not None:
                return False
            self._cause = Cause(kind, reason)
            self.reason = reason  # before the event: whoever sees it set reads this cause
            children = list(self._children)
        self._event.set()
        for child in children:
            child.set(kind, reason)
        return True

    def cause(self) -> Cause | None:
        """Why this was cancelled; None while it runs on."""
        return self._cause if self._event.is_set() else None

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `JobCancelled` if cancelled."""
        cause = self.cause()
        if cause is not None:
            raise JobCancelled(cause)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry's backoff), ending early with `JobCancelled` once cancelled."""
        self._event.wait(seconds)
        self.check()
