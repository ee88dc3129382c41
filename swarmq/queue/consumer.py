"""Celery's consumer, made to ride out broker outages as long as swarmq promises (`SWARMQ_OUTAGE_SECONDS`).

Celery restarts its consumer on the errors its transport declares connection errors. Others raised from
inside kombu or redis-py while Redis goes away (an ``AttributeError`` in ``restore_unacked`` on a connection
already torn down, celery/kombu#582) escape that net and end the worker. Here such an error is treated as the
outage it is: one log line, a wait, and the consumer restarted the way Celery restarts it after a connection
error. Past the outage limit, or for an error not raised from the transport's code, it ends the worker as
before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType

from celery.worker.consumer import Consumer as CeleryConsumer

from swarmq.errors import first_line
from swarmq.queue.retry import backoff

log = logging.getLogger(__name__)
TRANSPORT_MODULES = ("kombu.", "redis.", "amqp.")
"""Where an error must be raised for the consumer to count it as a broker outage."""


def from_transport(exc: BaseException) -> bool:
    """The error was raised in the transport's code (its innermost frame is kombu's, redis-py's or amqp's),
    or is one of its exception types."""
    if type(exc).__module__.startswith(TRANSPORT_MODULES):
        return True
    tb: TracebackType | None = exc.__traceback__
    module = ""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return module.startswith(TRANSPORT_MODULES)


class OutageClock:
    """How long the broker has been failing, and how long to wait before the next try. A failure more than
    ``limit`` seconds after the previous one starts a new outage."""

    def __init__(self, limit: float, now: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.now = limit, now
        self.started: float | None = None
        self.last = 0.0
        self.tries = 0

    def failed(self) -> float | None:
        """Record a failure: the seconds to wait before reconnecting, or None when the outage is past the
        limit."""
        t = self.now()
        if self.started is None or t - self.last > self.limit:
            self.started, self.tries = t, 0
        self.last, self.tries = t, self.tries + 1
        if t - self.started > self.limit:
            return None
        return min(backoff(self.tries - 1), max(0.0, self.limit - (t - self.started)))


class Consumer(CeleryConsumer):
    """`broker.make_app` names it (``worker_consumer``); the outage limit is the app's
    ``swarmq_outage_seconds``."""

    def start(self) -> None:
        clock = OutageClock(float(self.app.conf.get("swarmq_outage_seconds") or 60.0))
        while True:
            try:
                return super().start()
            except Exception as exc:
                if not from_transport(exc):
                    raise
                wait = clock.failed()
                if wait is None:
                    log.error("broker: %s: %s; outage past the limit", type(exc).__name__, first_line(exc))
                    raise
                log.warning(
                    "broker: %s: %s; reconnecting in %.1fs", type(exc).__name__, first_line(exc), wait
                )
                time.sleep(wait)
                self._reset(exc)

    def _reset(self, exc: BaseException) -> None:
        """What Celery does after a connection error, each step allowed to fail on the broken connection."""
        steps: tuple[Callable[[], object], ...] = (
            (lambda: self.on_connection_error_after_connected(exc))
            if self.connection
            else (lambda: self.on_connection_error_before_connected(exc)),
            self.on_close,
            lambda: self.blueprint.restart(self),
        )
        for step in steps:
            try:
                step()
            except Exception as cleanup:
                log.debug("broker: cleanup after the outage: %s", first_line(cleanup))
