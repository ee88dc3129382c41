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
    """The state version this job's update produced, when it was first applied (so also for a duplicate:
    Redis keeps it with the job's id, `lua/apply.lua`); 0 when missing."""
    staleness: int | None
    """Updates applied between the job's routing and its own; None when unknown (a duplicate of an update
    that a rebuild replayed) or missing."""


def select_examples(
    buffer: Sequence[Example], task_type: str, *, max_show: int, type_filtered: bool
) -> list[Example]:
    """The most recent ``max_show`` examples (optionally of this task type only), oldest first."""
    pool = [e for e in buffer if e.task_type == task_type] if type_filtered else list(buffer)
    return pool[-max_show:] if max_show > 0 else []


def replay_plan(versions: Sequence[int | None]) -> list[tuple[int, int]]:
    """The order of a rebuild's replay and the state version each update produces: (index into
    ``versions``, version) pairs. ``versions`` are the outcomes' versions as known (recorded in Postgres, or
    else still held by Redis for a job whose applied-mark never landed), None where neither knows one, in
    commit order. Known versions replay in their order and are kept, so Postgres, Redis and the rebuild
    agree; the unknown ones come last, in commit order, each taking the next number. Strictly increasing: a
    gap (a failure outcome `retry --failed` removed) stays a gap, and no later update reuses a number."""
    order = sorted(range(len(versions)), key=lambda i: (versions[i] is None, versions[i] or 0, i))
    out: list[tuple[int, int]] = []
    for i in order:
        prev = out[-1][1] if out else 0
        v = versions[i]
        out.append((i, v if v is not None and v > prev else prev + 1))
    return out


def state_from_updates(
    updates: Iterable[Update], agents: int, capacity: int, versions: Sequence[int] | None = None
) -> tuple[StreamState, dict[int, int]]:
    """Replay updates in order (pure): the state Redis would hold after applying them, and each applied job
    id with the state version its update produced (``versions``, parallel to ``updates``, from
    `replay_plan`; by default 1, 2, 3, ...). A job id seen again is skipped, as Redis skips it."""
    attempts: list[dict[str, int]] = [{} for _ in range(agents)]
    successes: list[dict[str, int]] = [{} for _ in range(agents)]
    buffers: list[list[Example]] = [[] for _ in range(agents)]
    applied: dict[int, int] = {}
    version = 0
    for i, u in enumerate(updates):
        if u.job_id in applied:
            continue
        version = versions[i] if versions is not None else version + 1
        applied[u.job_id] = version
        if not u.judged:
            continue
        attempts[u.agent_id][u.task_type] = attempts[u.agent_id].get(u.task_type, 0) + 1
        if u.success:
            successes[u.agent_id][u.task_type] = successes[u.agent_id].get(u.task_type, 0) + 1
            if u.example is not None and capacity > 0:
                buffers[u.agent_id] = [*buffers[u.agent_id], u.example][-capacity:]
    views = tuple(AgentView(i, attempts[i], successes[i]) for i in range(agents))
    return StreamState(version, views, tuple(tuple(b) for b in buffers)), applied
