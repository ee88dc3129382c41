"""A swarm's state as values: the stream it belongs to, agents' examples and histories, one job's update,
and the pure replay that rebuilds a state from updates (what Redis holds is always equal to this replay).

A stream is one (experiment, condition, replicate): an independent swarm with its own agents and seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarmq import keys
from swarmq.swarm.routing import AgentView


@dataclass(frozen=True)
class Stream:
    """The one identity of a stream: Postgres rows select by id, Redis keys carry the name and the id."""

    experiment_id: int
    experiment: str
    condition: str
    replicate: int

    def key(self, part: str) -> str:
        return keys.stream_key(self.experiment, self.experiment_id, self.condition, self.replicate, part)

    def buffer_keys(self, agents: int) -> list[str]:
        return [self.key(f"buf:{i}") for i in range(agents)]

    def __str__(self) -> str:
        return f"{self.experiment}/{self.condition}/r{self.replicate}"


@dataclass(frozen=True)
class Example:
    """A few-shot example in an agent's buffer: a solved problem."""

    id: str
    problem: str
    solution: str
    task_type: str

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "p": self.problem, "s": self.solution, "t": self.task_type})

    @staticmethod
    def from_json(text: str | bytes) -> Example:
        d = json.loads(text)
        return Example(id=d["id"], problem=d["p"], solution=d["s"], task_type=d["t"])


@dataclass(frozen=True)
class StreamState:
    version: int
    agents: tuple[AgentView, ...]
    buffers: tuple[tuple[Example, ...], ...]


@dataclass(frozen=True)
class Update:
    """What one scored job changes: a recorded attempt, and on success maybe an example."""

    job_id: int
    agent_id: int
    task_type: str
    success: bool
    example: Example | None
    judged: bool = True
    """False when the scorer could not judge the outcome: no attempt is counted (it says nothing about the
    agent), though the update is still applied once, for the record."""


@dataclass(frozen=True)
class Applied:
    status: str
    """applied, duplicate (already applied: a re-delivered job), or missing (no state: rebuild first)."""
    version: int
    staleness: int


def select_examples(
    buffer: Sequence[Example], task_type: str, *, max_show: int, type_filtered: bool
) -> list[Example]:
    """The most recent ``max_show`` examples (optionally of this task type only), oldest first."""
    pool = [e for e in buffer if e.task_type == task_type] if type_filtered else list(buffer)
    return pool[-max_show:] if max_show > 0 else []


def state_from_updates(
    updates: Iterable[Update], agents: int, capacity: int
) -> tuple[StreamState, list[int]]:
    """Replay updates in order (pure): the state Redis would hold after applying them, and their job ids."""
    attempts: list[dict[str, int]] = [{} for _ in range(agents)]
    successes: list[dict[str, int]] = [{} for _ in range(agents)]
    buffers: list[list[Example]] = [[] for _ in range(agents)]
    applied: list[int] = []
    for u in updates:
        if u.job_id in applied:
            continue
        applied.append(u.job_id)
        if not u.judged:
            continue
        attempts[u.agent_id][u.task_type] = attempts[u.agent_id].get(u.task_type, 0) + 1
        if u.success:
            successes[u.agent_id][u.task_type] = successes[u.agent_id].get(u.task_type, 0) + 1
            if u.example is not None and capacity > 0:
                buffers[u.agent_id] = [*buffers[u.agent_id], u.example][-capacity:]
    views = tuple(AgentView(i, attempts[i], successes[i]) for i in range(agents))
    return StreamState(len(applied), views, tuple(tuple(b) for b in buffers)), applied
