"""Every state a job or an experiment can be in, named once, with the named sets the code asks about.

Python code, SQL statements, CHECK constraints and server-side SQL all spell a state through these enums, so
a state is never a bare string in two places (celery's ``states.py``, rq's ``JobStatus``).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


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


OPEN: frozenset[JobStatus] = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING})
"""Not finished and not held: the experiment still has work."""
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


def sql_list(states: Iterable[StrEnum]) -> str:
    """``('a', 'b')``: states as an SQL list literal, in their enum's order, for the IN clauses of
    statements and constraints."""
    chosen = set(states)
    if not chosen:
        raise ValueError("sql_list: no states")
    enum = type(next(iter(chosen)))
    return "(" + ", ".join(f"'{s.value}'" for s in enum if s in chosen) + ")"
