"""The consumer's outage rule (pure parts, and its restart loop with Celery's own start stubbed): a broker
error raised in kombu's or redis-py's code is an outage to wait out until SWARMQ_OUTAGE_SECONDS, anything
else ends the worker as before. The live check is in test_reliability (ten Redis kills under --slots 4)."""

from __future__ import annotations

from typing import Any

import pytest
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport.redis import QoS

from swarmq.queue import consumer as consumer_mod
from swarmq.queue.consumer import Consumer, OutageClock, from_transport


def kombu_attribute_error() -> AttributeError:
    """What celery/kombu#582 looks like: restore_unacked on a channel already torn down."""
    qos = QoS.__new__(QoS)
    qos.channel, qos._delivered = None, {"tag": 1}
    try:
        qos.restore_unacked()
    except AttributeError as exc:
        return exc
    raise AssertionError("kombu raised nothing")


def test_errors_raised_in_the_transport_are_outages() -> None:
    assert from_transport(kombu_attribute_error())
    try:
        {}["x"]
    except KeyError as exc:
        assert not from_transport(exc)  # a bug of ours (or Celery's) still ends the worker


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_outage_clock_waits_with_backoff_until_the_limit() -> None:
    now = Clock()
    clock = OutageClock(10.0, now)
    waits = []
    for _ in range(6):
        waits.append(clock.failed())
        now.t += 2.0
    assert waits[:3] == [0.25, 0.5, 1.0]
    assert waits[5] == 0.0  # 10 s in: nothing left to wait
    now.t += 0.5
    assert clock.failed() is None  # past the limit
    now.t += 30.0  # a failure long after the last one is a new outage
    assert clock.failed() == 0.25


class App:
    class conf:
        @staticmethod
        def get(key: str) -> Any:
            return {"swarmq_outage_seconds": 5.0}.get(key)


def stub_consumer(monkeypatch: pytest.MonkeyPatch, errors: list[BaseException]) -> tuple[Consumer, list[str]]:
    """A Consumer whose Celery start raises ``errors`` in turn, then returns; its resets are recorded."""
    calls: list[str] = []

    def start(self: Any) -> None:
        calls.append("start")
        if errors:
            raise errors.pop(0)

    monkeypatch.setattr(CeleryConsumer, "start", start)
    monkeypatch.setattr(consumer_mod.time, "sleep", lambda s: calls.append(f"sleep {s}"))
    c = Consumer.__new__(Consumer)
    c.app = App()  # type: ignore[assignment]
    monkeypatch.setattr(c, "_reset", lambda exc: calls.append("reset"), raising=False)
    return c, calls


def test_a_transport_error_restarts_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    c, calls = stub_consumer(monkeypatch, [kombu_attribute_error(), kombu_attribute_error()])
    c.start()
    assert calls == ["start", "sleep 0.25", "reset", "start", "sleep 0.5", "reset", "start"]


def test_any_other_error_ends_the_worker_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    c, calls = stub_consumer(monkeypatch, [RuntimeError("a bug")])
    with pytest.raises(RuntimeError):
        c.start()
    assert calls == ["start"]
