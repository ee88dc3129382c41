"""The Lua scripts against real Redis, checked against the pure replay `state_from_updates`."""

from __future__ import annotations

import random
from typing import Any

import pytest

from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.state import Example, Stream, Update, state_from_updates

pytestmark = pytest.mark.services
KEY = Stream(0, "exp", "control", 0)


def updates(n: int, agents: int, seed: int = 0) -> list[Update]:
    rng = random.Random(seed)
    out = []
    for j in range(n):
        ok = rng.random() < 0.6
        t = rng.choice(["math", "string", "list"])
        judged = j % 7 != 3  # now and then the scorer could not judge: recorded, but no attempt counted
        ex = Example(str(j), f"p{j}", f"s{j}", t) if ok and judged else None
        out.append(Update(j, rng.randrange(agents), t, ok and judged, ex, judged))
    return out


@pytest.fixture
def store(svc: Any) -> SwarmStore:
    return SwarmStore(svc.redis)


def test_missing_state_reports_missing(store: SwarmStore) -> None:
    assert store.snapshot(KEY, 3, job_id=1) is None
    assert store.apply(KEY, updates(1, 3)[0], capacity=5).status == "missing"


def test_apply_matches_pure_replay_and_is_idempotent(store: SwarmStore) -> None:
    empty, _ = state_from_updates([], 3, 2)
    assert store.restore(KEY, 3, empty, [])
    assert not store.restore(KEY, 3, empty, [])  # a second restorer loses the race, harmlessly
    ups = updates(40, 3)
    for u in ups:
        assert store.apply(KEY, u, capacity=2).status == "applied"
    for u in ups[:5]:  # re-delivered jobs
        assert store.apply(KEY, u, capacity=2).status == "duplicate"
    expected, _ = state_from_updates(ups, 3, 2)
    got = store.snapshot(KEY, 3, job_id=999)
    assert got == expected
    assert got is not None and got.version == 40
    assert all(len(b) <= 2 for b in got.buffers)  # FIFO capacity: oldest dropped


def test_restore_reproduces_state_and_dedup_set(store: SwarmStore) -> None:
    ups = updates(25, 2, seed=3)
    state, applied = state_from_updates(ups, 2, 5)
    assert store.restore(KEY, 2, state, applied)
    assert store.peek(KEY, 2) == state
    assert store.apply(KEY, ups[7], capacity=5).status == "duplicate"


def test_staleness_counts_updates_since_routing(store: SwarmStore) -> None:
    empty, _ = state_from_updates([], 1, 5)
    store.restore(KEY, 1, empty, [])
    store.snapshot(KEY, 1, job_id=100)  # job 100 routes at version 0
    store.snapshot(KEY, 1, job_id=101)
    store.snapshot(KEY, 1, job_id=102)
    assert store.apply(KEY, Update(101, 0, "math", False, None), 5).staleness == 0
    assert store.apply(KEY, Update(102, 0, "math", False, None), 5).staleness == 1
    assert store.apply(KEY, Update(100, 0, "math", True, None), 5).staleness == 2
