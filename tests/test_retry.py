"""Riding out outages: `with_retry` retries only transient errors, waits exactly the `backoff` delays (the
last one shortened to the deadline), and past the deadline gives up with one actionable line. A fake clock
stands in for time, so the test checks the schedule itself and never sleeps."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import redis
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from swarmq.errors import ServiceUnavailable
from swarmq.queue.retry import backoff, with_retry


class FakeTime:
    """A monotonic clock that only moves when `sleep` is called; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start  # not 0: with_retry must measure from its own start, not from the epoch of the clock
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def failing(errors: list[BaseException], result: object = "ok") -> tuple[Callable[[], object], list[int]]:
    """A function raising ``errors`` one per call, then returning ``result``; and its call counter."""
    calls = [0]

    def fn() -> object:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def pg_down(
    message: str = 'connection to server at "127.0.0.1", port 5432 failed: Connection refused',
) -> Exception:
    """What SQLAlchemy raises when Postgres is gone: a wrapped driver error whose text spans several lines."""
    return OperationalError("SELECT 1", {}, Exception(f"{message}\n\tIs the server running on that host?"))


def test_backoff_values_and_cap() -> None:
    assert [backoff(n) for n in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert all(isinstance(backoff(n), float) for n in range(8))
    assert backoff(3, base=1.0, factor=3.0, cap=100.0) == 27.0
    assert backoff(10, base=1.0, factor=3.0, cap=100.0) == 100.0


def test_backoff_rejects_negative_attempts() -> None:
    with pytest.raises(ValueError, match=r"^attempt must be >= 0, got -1$"):
        backoff(-1)


@pytest.mark.parametrize("attempt", [64, 65, 1100, 10**6, 10**100])
def test_backoff_huge_attempt_is_the_cap_without_overflow(attempt: int) -> None:
    # 2.0 ** 1100 alone raises OverflowError; a worker crashing for days must still get a delay.
    assert backoff(attempt) == 8.0


def test_transient_errors_are_retried_with_backoff_then_succeed(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    errors: list[BaseException] = [
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        pg_down(),
        redis.TimeoutError("Timeout reading from socket"),
        ConnectionResetError(104, "Connection reset by peer"),
    ]
    fn, calls = failing(errors, result=42)
    with caplog.at_level(logging.WARNING, logger="swarmq.queue.retry"):
        assert with_retry(fn, what="publish", deadline_seconds=60, sleep=t.sleep, clock=t.clock) == 42
    assert calls[0] == 5
    assert t.sleeps == [0.25, 0.5, 1.0, 2.0]
    assert [r.getMessage() for r in caplog.records] == [
        "publish: ConnectionError; retrying in 0.2 s",
        "publish: OperationalError; retrying in 0.5 s",
        "publish: TimeoutError; retrying in 1.0 s",
        "publish: ConnectionResetError; retrying in 2.0 s",
    ]


def test_success_at_once_neither_sleeps_nor_reads_past_the_start() -> None:
    t = FakeTime()
    fn, calls = failing([], result=[1, 2])
    assert with_retry(fn, what="x", deadline_seconds=5, sleep=t.sleep, clock=t.clock) == [1, 2]
    assert (calls[0], t.sleeps) == (1, [])


def test_past_the_deadline_raises_one_line_naming_what_seconds_and_error() -> None:
    t = FakeTime()
    fn, calls = failing([pg_down() for _ in range(100)])
    with pytest.raises(ServiceUnavailable) as info:
        with_retry(fn, what="claim job 7", deadline_seconds=30, sleep=t.sleep, clock=t.clock)
    # Capped at 8, and the last pause only up to the deadline: 0.25+0.5+1+2+4+8+8 = 23.75, then 6.25.
    assert t.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 6.25]
    assert sum(t.sleeps) == 30
    assert calls[0] == len(t.sleeps) + 1
    message = str(info.value)
    assert message == (
        "claim job 7: service unavailable for 30 s (limit 30 s): (builtins.Exception) "
        'connection to server at "127.0.0.1", port 5432 failed: Connection refused'
    )
    assert "\n" not in message
    assert (
        info.value.__cause__ is None and info.value.__suppress_context__
    )  # `from None`: no driver traceback
    assert info.value.exit_code == 3


def test_deadline_is_measured_from_the_first_call() -> None:
    """A slow failing call counts against the deadline too: time spent inside fn is not free."""
    t = FakeTime()
    calls = [0]

    def slow_and_down() -> None:
        calls[0] += 1
        t.now += 7  # each attempt takes 7 s to time out
        raise redis.ConnectionError("Timeout connecting to server")

    with pytest.raises(
        ServiceUnavailable, match=r"^enqueue: service unavailable for 22 s \(limit 20 s\): Timeout"
    ):
        with_retry(slow_and_down, what="enqueue", deadline_seconds=20, sleep=t.sleep, clock=t.clock)
    # 7 → pause 0.25; 14.25 → pause min(0.5, 5.75); 21.75 > 20 → give up (rounded to 22 in the message).
    assert t.sleeps == [0.25, 0.5]
    assert calls[0] == 3


def test_zero_deadline_fails_on_the_first_transient_error() -> None:
    t = FakeTime()
    fn, calls = failing([redis.ConnectionError("")])
    with pytest.raises(
        ServiceUnavailable, match=r"^ping: service unavailable for 0 s \(limit 0 s\): ConnectionError$"
    ):
        with_retry(fn, what="ping", deadline_seconds=0, sleep=t.sleep, clock=t.clock)
    assert (calls[0], t.sleeps) == (1, [])


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad row"),
        KeyError("job"),
        IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint")),
        DBAPIError("SELECT", {}, Exception("syntax error"), connection_invalidated=False),
    ],
    ids=["ValueError", "KeyError", "IntegrityError", "DBAPIError"],
)
def test_non_transient_errors_propagate_at_once(error: Exception) -> None:
    t = FakeTime()
    fn, calls = failing([error])
    with pytest.raises(type(error)) as info:
        with_retry(fn, what="x", deadline_seconds=60, sleep=t.sleep, clock=t.clock)
    assert info.value is error
    assert (calls[0], t.sleeps) == (1, [])


def test_invalidated_connection_is_transient() -> None:
    """A DBAPIError that SQLAlchemy marks as a dropped connection (Postgres restarted) is retried."""
    t = FakeTime()
    dropped = DBAPIError(
        "SELECT", {}, Exception("server closed the connection unexpectedly"), connection_invalidated=True
    )
    fn, calls = failing([dropped], result="back")
    assert with_retry(fn, what="x", deadline_seconds=60, sleep=t.sleep, clock=t.clock) == "back"
    assert (calls[0], t.sleeps) == (2, [0.25])
