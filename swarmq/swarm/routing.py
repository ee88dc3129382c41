"""Which agent of a swarm takes the next job: pure, seeded routing decisions.

An agent is a few-shot context buffer on the shared model; what a router sees of it is an ``AgentView``,
its per-task-type attempts and successes. Every decision is a function of (seed, position, state), so a
stream can be replayed exactly after a crash. Randomness comes only from ``random.Random(int).random()``,
the one part of the ``random`` module that Python promises to keep reproducible across versions, and
seeds are derived with SHA-256 (never ``hash()``, which is salted per process).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

Router = Literal["single", "random", "round_robin", "affinity", "greedy", "ucb"]
ROUTERS: tuple[str, ...] = get_args(Router)
HISTORY_ROUTERS = ("affinity", "greedy", "ucb")
"""Routers whose choice depends on the agents' past attempts and successes."""
PRIOR_RATE = 0.5
"""Success rate assumed for a task type an agent has not tried yet (no evidence either way)."""


@dataclass(frozen=True)
class AgentView:
    """What a router knows about one agent: attempts and successes per task type."""

    agent_id: int
    attempts: Mapping[str, int]
    successes: Mapping[str, int]

    def tries(self, task_type: str) -> int:
        return self.attempts.get(task_type, 0)

    def rate(self, task_type: str) -> float:
        """Success rate on this task type; ``PRIOR_RATE`` before any attempt."""
        n = self.tries(task_type)
        return self.successes.get(task_type, 0) / n if n else PRIOR_RATE


@dataclass(frozen=True)
class RouteDecision:
    """The chosen agent and, for the record, what the choice was made from.

    ``probabilities`` (random, affinity) and ``scores`` (greedy: rates; ucb: UCB1 values) are in
    ascending ``agent_id`` order; None when the router has none (ucb picks an untried agent by rule).
    """

    agent_id: int
    probabilities: tuple[float, ...] | None = None
    scores: tuple[float, ...] | None = None


def sha_int(text: str) -> int:
    # 63 bits so the value fits a signed BIGINT column as well as any RNG.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def derive(seed: int, position: int) -> int:
    """Seed of the routing draw at ``position`` of a stream (independent of earlier draws)."""
    return sha_int(f"swarmq/route/{seed}/{position}")


def softmax(values: Sequence[float], temperature: float) -> tuple[float, ...]:
    """softmax(values / T), shifted by the maximum so a tiny T does not overflow."""
    top = max(values)
    weights = [math.exp((v - top) / temperature) for v in values]
    total = sum(weights)
    return tuple(w / total for w in weights)


def _sample(probabilities: Sequence[float], u: float) -> int:
    acc = 0.0
    for i, p in enumerate(probabilities):
        acc += p
        if u < acc:
            return i
    # u is just below 1 and rounding left acc short: take the last agent with any mass.
    return max(i for i, p in enumerate(probabilities) if p > 0)


def _argmax(scores: Sequence[float]) -> int:
    """Index of the highest score; the first (lowest id) on ties."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def route(
    router: str,
    agents: Sequence[AgentView],
    task_type: str,
    *,
    seed: int,
    position: int,
    temperature: float = 0.5,
    ucb_c: float = math.sqrt(2),
) -> RouteDecision:
    """Choose the agent for the job at ``position`` of the stream seeded with ``seed``.

    Agents are considered in ascending ``agent_id`` order whatever order they are passed in;
    ``round_robin`` and ``single`` index into that order.
    """
    if not agents:
        raise ValueError("route() needs at least one agent")
    if router not in ROUTERS:
        raise ValueError(f"unknown router {router!r} (choose from {', '.join(ROUTERS)})")
    ordered = sorted(agents, key=lambda a: a.agent_id)
    ids = [a.agent_id for a in ordered]
    n = len(ordered)
    if len(set(ids)) != n:
        raise ValueError(f"duplicate agent ids in {ids}")
    rng = random.Random(derive(seed, position))

    if router == "single":
        return RouteDecision(ids[0])
    if router == "round_robin":
        return RouteDecision(ids[position % n])
    if router == "random":
        uniform = tuple(1.0 / n for _ in ids)
        return RouteDecision(ids[min(int(rng.random() * n), n - 1)], probabilities=uniform)

    rates = tuple(a.rate(task_type) for a in ordered)
    if router == "affinity":
        if not temperature > 0:
            raise ValueError(f"affinity router needs temperature > 0, got {temperature}")
        probs = softmax(rates, temperature)
        return RouteDecision(ids[_sample(probs, rng.random())], probabilities=probs)
    if router == "greedy":
        return RouteDecision(ids[_argmax(rates)], scores=rates)

    # ucb: UCB1 with one arm per agent, rewarded by success on this task type.
    tries = [a.tries(task_type) for a in ordered]
    for i, t in enumerate(tries):
        if t == 0:
            return RouteDecision(ids[i])
    log_total = math.log(sum(tries))
    scores = tuple(r + ucb_c * math.sqrt(log_total / t) for r, t in zip(rates, tries, strict=True))
    return RouteDecision(ids[_argmax(scores)], scores=scores)
