"""Riding out short Postgres/Redis outages: retry with capped exponential backoff up to a deadline.

An outage shorter than the deadline (``SWARMQ_OUTAGE_SECONDS``, default 60 s) costs a pause and nothing else;
a longer one raises `ServiceUnavailable`, and the worker exits non-zero (its lease then expires normally).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis as redis_lib
from sqlalchemy.exc import DBAPIError, OperationalError

from swarmq.errors import ServiceUnavailable, first_line

log = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT: tuple[type[BaseException], ...] = (
    OperationalError,
    redis_lib.ConnectionError,
    redis_lib.TimeoutError,
    ConnectionError,
)


def backoff(attempt: int, *, base: float = 0.25, factor: float = 2.0, cap: float = 8.0) -> float:
    """Delay before retry number ``attempt`` (0-based): base·factor^attempt, capped, so that something
    failing over and over neither spins nor waits unboundedly. The one backoff of swarmq (outages here,
    crashed workers in the supervisor)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if attempt > 64:  # factor**attempt would overflow a float long after the cap is reached
        return cap
    return float(min(cap, base * factor**attempt))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, TRANSIENT)


def with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    deadline_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient connection errors until the deadline passes."""
    start = clock()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            waited = clock() - start
            if waited >= deadline_seconds:
                raise ServiceUnavailable(
                    f"{what}: service unavailable for {waited:.0f} s (limit {deadline_seconds:.0f} s): "
                    f"{first_line(exc)}"
                ) from None
            delay = min(backoff(attempt), max(0.0, deadline_seconds - waited))
            log.warning("%s: %s; retrying in %.1f s", what, type(exc).__name__, delay)
            sleep(delay)
            attempt += 1
