"""A job's prompt as the agent saw it: which stretches are its few-shot examples, and what its buffer held.

Nothing about either is stored beyond the outcome's ``example_ids`` and ``state_version``; both are rebuilt
from Postgres the way the swarm's own rebuild does (`streams.sync`): the stream's updates replayed in the
order Redis applied them, up to the version the job was routed from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from swarmq.experiment.config import ExperimentConfig
from swarmq.store import outcomes
from swarmq.streams.sync import issues_by_id
from swarmq.streams.updates import update_of
from swarmq.swarm.state import Example, Stream, Update, state_from_updates
from swarmq.view.models import Message, Segment


@dataclass(frozen=True)
class StreamHistory:
    """A stream's updates in the order Redis applied them, read once: every job page of the stream asks it
    for its agent's buffer at its own moment."""

    updates: list[tuple[int | None, Update]]
    """(applied version, update); None for an outcome whose update is not applied yet."""
    agents: int
    capacity: int

    @classmethod
    def read(cls, session: Session, stream: Stream, config: ExperimentConfig) -> StreamHistory:
        cond = config.conditions[stream.condition]
        pairs = outcomes.stream_outcomes(session, stream)
        issues = issues_by_id(session, [j.issue_id for j, _ in pairs])
        updates = [(o.applied_version, update_of(j, o, issues[j.issue_id], config)) for j, o in pairs]
        return cls(updates, cond.agents, cond.max_examples)

    def examples(self) -> dict[str, Example]:
        """Every example the stream's successes made, by id (a prompt's examples are among them)."""
        return {u.example.id: u.example for _, u in self.updates if u.example is not None}

    def buffer_at(self, agent: int, state_version: int) -> list[Example]:
        """The buffer of ``agent`` in the stream's state at ``state_version``: the updates Redis had
        applied when the job was routed, replayed (`state_from_updates`)."""
        before = [u for v, u in self.updates if v is not None and v <= state_version]
        state, _ = state_from_updates(before, self.agents, self.capacity)
        return list(state.buffers[agent]) if 0 <= agent < len(state.buffers) else []


def mark(text: str, examples: Sequence[Example]) -> list[Segment]:
    """``text`` cut into segments, each example's problem-and-solution stretch marked with its id.

    Found by content, not by a benchmark's framing: an example is the first occurrence of its solution
    after the previous example, extended back over its problem when the problem is right before it (up to
    a few framing characters). An example that cannot be found leaves the text unmarked."""
    segments: list[Segment] = []
    cursor = 0
    for example in examples:
        solution = example.solution.strip()
        if not solution:
            continue
        end_at = text.find(solution, cursor)
        if end_at < 0:
            continue
        start = end_at
        problem = example.problem.strip()
        if problem:
            p = text.rfind(problem, cursor, end_at)
            if p >= 0:
                start = p
        if start > cursor:
            segments.append(Segment(text[cursor:start]))
        end = end_at + len(solution)
        segments.append(Segment(text[start:end], example.id))
        cursor = end
    if cursor < len(text):
        segments.append(Segment(text[cursor:]))
    return segments


def chat_messages(prompt: str, examples: Sequence[Example]) -> list[Message] | None:
    """A chat prompt (recorded as the JSON of its messages) as messages, each marked like a plain prompt:
    a message that holds an example's problem or solution belongs to that example. None when the prompt is
    not such a JSON list."""
    try:
        raw = json.loads(prompt)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        return None
    out = []
    for m in raw:
        content = str(m.get("content", ""))
        owner = next(
            (
                e.id
                for e in examples
                if (e.solution.strip() and e.solution.strip() in content)
                or (e.problem.strip() and e.problem.strip() in content)
            ),
            None,
        )
        out.append(Message(str(m.get("role", "")), [Segment(content, owner)]))
    return out
