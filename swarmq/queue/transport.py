"""kombu's Redis transport, made to ride over entries it cannot read: what a worker consumes with.

kombu pops an entry off a queue (BRPOP) and decodes it in its event loop; an entry that is not JSON, or not
a message envelope, raises there and Celery ends the worker ("Unrecoverable error"). Here every entry is
checked first (`messages.check_envelope`): one that fails is discarded with one log line, before kombu
records it as unacked or Celery reads it. Registered under `ALIAS` (`broker.make_app` names it); otherwise
kombu's own transport, unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from swarmq import keys
from swarmq.queue.messages import BadMessage, check_envelope

log = logging.getLogger(__name__)
ALIAS = "swarmq-redis"
TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"


def is_job_queue(queue: str) -> bool:
    """A queue swarmq publishes jobs on (`keys.queue_name`, `keys.DEFAULT_QUEUE`)."""
    return queue.startswith(keys.QUEUE_PREFIX) and not queue.endswith(".pidbox")


def discard(queue: str, why: str) -> None:
    log.warning("queue=%s: discarded an entry swarmq does not run: %s", queue, why)


UNREADABLE = (ValueError, TypeError, KeyError)
"""What kombu's decoding of an entry raises: not JSON, not UTF-8 (both ValueErrors), or a kombu type marker
(``{"__type__": ...}``) it cannot build."""


class Channel(kombu_redis.Channel):
    _reached = False
    """Whether the entry being read got as far as `basic_consume`'s check (then it was decoded)."""

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        tag = super().basic_consume(queue, *args, **kwargs)
        if not is_job_queue(queue):  # Celery's own (remote control, `celery inspect`) carry its messages
            return tag
        deliver: Callable[[Any], Any] = self.connection._callbacks[queue]

        def checked(raw: Any) -> Any:
            self._reached = True
            try:
                check_envelope(raw)
            except BadMessage as exc:
                return discard(queue, str(exc))
            return deliver(raw)

        self.connection._callbacks[queue] = checked
        return tag

    def _brpop_read(self, **options: Any) -> Any:
        # kombu pops the entry and decodes it inside this call: one it cannot decode is gone from the queue
        # by then, and is dropped here rather than end the event loop. Errors past the decoding (Celery's)
        # are not this method's to judge.
        self._reached = False
        try:
            return super()._brpop_read(**options)
        except UNREADABLE as exc:
            if self._reached:
                raise
            discard("(a model queue)", f"unreadable ({type(exc).__name__})")
            return True

    def _get(self, queue: str, timeout: Any = None) -> Any:
        try:
            return super()._get(queue)
        except UNREADABLE as exc:
            discard(queue, f"unreadable ({type(exc).__name__})")
            raise Empty() from None


class Transport(kombu_redis.Transport):
    Channel = Channel
