"""Stopping a sandboxed run from outside. A caller that may have to stop a scorer (a job's runner, at its
deadline or when the job is no longer its own) wraps the call in ``cancelling(signal)``: every run started
in that context looks at ``signal.is_set()`` while it waits, and a cancelled run is killed, cleaned up like
any other, and raises `Cancelled` with ``signal.reason``. The scorers in between need not know of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

POLL_SECONDS = 0.1
"""How often a run under a signal looks at it while it waits for the program."""


class Signal(Protocol):
    """What the sandbox sees of a caller's cancellation (`model.base.CancelSignal` has the same shape)."""

    reason: str

    def is_set(self) -> bool: ...


class Cancelled(Exception):
    """A run stopped because its caller's signal was set; the message is the signal's reason."""


_signal: ContextVar[Signal | None] = ContextVar("swarmq_sandbox_cancel", default=None)


@contextmanager
def cancelling(signal: Signal) -> Iterator[None]:
    """Runs started inside the block (this thread, this context) stop when ``signal`` is set."""
    token = _signal.set(signal)
    try:
        yield
    finally:
        _signal.reset(token)


def current() -> Signal | None:
    """The signal of the innermost `cancelling` block, if any."""
    return _signal.get()
