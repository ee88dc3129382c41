"""The Lua scripts against real Redis, checked against the pure replay `state_from_updates`."""

from __future__ import annotations

import random
from typing import Any

import pytest

from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.state import Example, Stream, Update, replay_plan, state_from_updates

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
    for i, u in enumerate(ups[:5]):  # re-delivered jobs: the version their first apply produced comes back
        again = store.apply(KEY, u, capacity=2)
        assert (again.status, again.version) == ("duplicate", i + 1)
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


def test_a_duplicate_returns_the_version_and_staleness_of_the_first_apply(store: SwarmStore) -> None:
    store.restore(KEY, 1, state_from_updates([], 1, 5)[0], [])
    store.snapshot(KEY, 1, job_id=7)  # job 7 routes at version 0
    store.apply(KEY, Update(8, 0, "math", False, None), 5)
    first = store.apply(KEY, Update(7, 0, "math", True, Example("7", "p", "s", "math")), 5)
    assert (first.status, first.version, first.staleness) == ("applied", 2, 1)
    again = store.apply(KEY, Update(7, 0, "math", True, Example("7", "p", "s", "math")), 5)
    assert (again.status, again.version, again.staleness) == ("duplicate", 2, 1)
    assert store.applied_versions(KEY) == {8: 1, 7: 2}


def test_restore_keeps_the_replayed_versions_for_duplicates(store: SwarmStore) -> None:
    ups = updates(6, 2, seed=4)
    state, applied = state_from_updates(ups, 2, 5, [1, 2, 4, 5, 6, 9])  # 3, 7 and 8 were removed
    assert store.restore(KEY, 2, state, applied)
    assert store.peek(KEY, 2) == state and state.version == 9
    dup = store.apply(KEY, ups[3], capacity=5)
    assert (dup.status, dup.version, dup.staleness) == ("duplicate", 5, None)
    assert store.apply(KEY, Update(100, 0, "math", False, None), 5).version == 10  # no number reused


def test_state_from_before_per_job_versions_is_rebuilt(store: SwarmStore, svc: Any) -> None:
    """A stream written when `applied` was a set of ids: the apply reports it missing (the caller rebuilds
    it from Postgres), never a duplicate without a version, never a second apply."""
    svc.redis.hset(KEY.key("meta"), mapping={"version": 1, "agents": 1})
    svc.redis.sadd(KEY.key("applied"), 1)
    assert store.apply(KEY, Update(1, 0, "math", False, None), 5).status == "missing"
    assert not svc.redis.exists(KEY.key("meta"))


@pytest.mark.parametrize(
    ("known", "expected"),
    [
        ([], []),
        ([1, 2, 3], [(0, 1), (1, 2), (2, 3)]),
        ([1, 2, None, 4, None], [(0, 1), (1, 2), (3, 4), (2, 5), (4, 6)]),  # unknown: last, in commit order
        ([1, 2, 4], [(0, 1), (1, 2), (2, 4)]),  # a removed outcome's gap stays
        ([3, None, 1], [(2, 1), (0, 3), (1, 4)]),  # a version Redis still held orders its job
        ([2, 2], [(0, 2), (1, 3)]),  # never a number twice
    ],
)
def test_replay_plan(known: list[int | None], expected: list[tuple[int, int]]) -> None:
    assert replay_plan(known) == expected
