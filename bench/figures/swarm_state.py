"""Figure 4: swarm-state operations per second against Redis, from 1 and 2 processes on one stream.

One operation is what a worker does per job: `SwarmStore.snapshot` (read and reserve, Lua), `routing.route`
(affinity over 3 agents) and `SwarmStore.apply` (Lua; successes add a HumanEval-sized example, buffers of 5).
Baseline: the same two Lua scripts called with the same keys and arguments, without parsing the reply or
routing: the Redis round trips alone.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from importlib import resources
from typing import Any

import redis as redis_lib

from bench.figures import Context
from bench.measure import FigureResult, Row

KEY = "4"
TITLE = "swarm state: snapshot + route + apply"
AGENTS, CAPACITY = 3, 5
TASK_TYPES = ("string", "math", "list", "logic")
PROBLEM = 'def add(a: int, b: int) -> int:\n    """Add two numbers.\n    >>> add(2, 3)\n    5\n    """\n' * 3
SOLUTION = "    return a + b\n" * 4


def _loop(mode: str, url: str, proc: int, ops: int, barrier: Any, results: Any) -> None:
    from swarmq.swarm.redis import SwarmStore
    from swarmq.swarm.routing import route
    from swarmq.swarm.state import Example, Stream, Update

    client = redis_lib.Redis.from_url(url)
    store = SwarmStore(client)
    key = Stream(0, "bench-swarm", "experimental", 0)
    lua = resources.files("swarmq") / "swarm" / "lua"
    snap = client.register_script((lua / "snapshot.lua").read_text())
    apply = client.register_script((lua / "apply.lua").read_text())
    snap_keys = [key.key("meta"), key.key("hist"), key.key("inflight"), *key.buffer_keys(AGENTS)]
    example = Example("0", PROBLEM, SOLUTION, "math")
    barrier.wait()
    start = time.time()
    for i in range(ops):
        job_id, task_type, success = proc * 10_000_000 + i, TASK_TYPES[i % 4], i % 2 == 0
        if mode == "swarmq":
            state = store.snapshot(key, AGENTS, job_id)
            assert state is not None
            agent = route("affinity", state.agents, task_type, seed=7, position=i, temperature=0.5).agent_id
            store.apply(
                key, Update(job_id, agent, task_type, success, example if success else None), CAPACITY
            )
        else:
            agent = i % AGENTS
            snap(keys=snap_keys, args=[job_id])
            apply_keys = [
                key.key("meta"),
                key.key("hist"),
                key.key("applied"),
                key.key("inflight"),
                key.key(f"buf:{agent}"),
            ]
            apply(
                keys=apply_keys,
                args=[
                    job_id,
                    agent,
                    task_type,
                    "1" if success else "0",
                    example.to_json() if success else "",
                    CAPACITY,
                    "1",  # the scorer judged it
                ],
            )
    results.put((start, time.time()))


def measure(mode: str, url: str, procs: int, ops: int) -> float:
    """Aggregate operations per second of ``procs`` processes on one stream (first start to last end)."""
    from swarmq.swarm.redis import SwarmStore
    from swarmq.swarm.state import Stream, StreamState

    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    empty = StreamState(0, (), tuple(() for _ in range(AGENTS)))
    SwarmStore(client).restore(Stream(0, "bench-swarm", "experimental", 0), AGENTS, empty, [])
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_loop, args=(mode, url, p, ops, barrier, results)) for p in range(procs)]
    for w in workers:
        w.start()
    spans = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join()
    return procs * ops / (max(e for _, e in spans) - min(s for s, _ in spans))


def run(ctx: Context) -> FigureResult:
    col: dict[tuple[str, int], list[float]] = {}
    url = ctx.endpoints.redis_url  # Redis only: no database needed
    try:
        for r in range(ctx.repeats):
            for procs in (1, 2):
                for mode in (
                    ("raw", "swarmq") if r % 2 == 0 else ("swarmq", "raw")
                ):  # alternate who goes first
                    col.setdefault((mode, procs), []).append(measure(mode, url, procs, ctx.swarm_ops))
            ctx.say(
                f"  swarm repeat {r + 1}/{ctx.repeats}: swarmq {col[('swarmq', 1)][-1]:.0f} ops/s (1 proc), "
                f"{col[('swarmq', 2)][-1]:.0f} ops/s (2 procs)"
            )
    finally:
        redis_lib.Redis.from_url(url).flushdb()
    base = "the same two Lua scripts, reply not parsed, no routing"
    fig = FigureResult(KEY, TITLE)
    for procs in (1, 2):
        label = f"ops/s, {procs} process{'es' if procs > 1 else ''}"
        fig.rows.append(Row(label, "ops/s", col[("raw", procs)], col[("swarmq", procs)], baseline_label=base))
    fig.rows.append(
        Row(
            "ms/op, 1 process",
            "ms",
            [1000 / x for x in col[("raw", 1)]],
            [1000 / x for x in col[("swarmq", 1)]],
            baseline_label=base,
        )
    )
    fig.details = {
        "ops_per_process": ctx.swarm_ops,
        "agents": AGENTS,
        "capacity": CAPACITY,
        "ops_per_s": {f"{m}/{p}": v for (m, p), v in col.items()},
    }
    return fig
