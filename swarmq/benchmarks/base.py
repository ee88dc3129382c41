"""What a benchmark is to swarmq: a plugin that loads rows, frames prompts, keeps examples and scores.

Everything benchmark-specific lives behind `Benchmark`; the rest of swarmq only looks a benchmark up by the
name an experiment file gives (`registry.get_benchmark`). Adding an MBPP-like set is one module that
implements this protocol, and one line in the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from swarmq.swarm.state import Example


@dataclass(frozen=True)
class Issue:
    """One unit of work of a benchmark (a SWE-bench instance, a HumanEval problem)."""

    instance_id: str
    problem: str
    """The text the model is asked about (HumanEval: the function prompt; SWE-bench: the issue text)."""
    task_type: str
    """One of the experiment's task types (string, math, list, logic by default)."""
    category: str | None = None
    repo: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """Everything the scorer and prompt need (tests, entry point, gold patch, base commit, ...). JSON-safe."""


@dataclass(frozen=True)
class Prompt:
    text: str
    """What is recorded and, for plain completion, sent."""
    messages: tuple[dict[str, str], ...] | None
    """Chat messages when the model has a chat template."""
    example_ids: tuple[str, ...]


UNJUDGED = "error"
"""The score status of an outcome the scorer could not judge: no evidence about the model, so it counts
neither in success rates nor as an attempt in the swarm's history."""


def judged(score_status: str | None) -> bool:
    """Whether an outcome with this score status says anything about the model (None: not scored by rule)."""
    return score_status != UNJUDGED


@dataclass(frozen=True)
class Score:
    success: bool
    """Whether the outcome counts as a success for the swarm update and results."""
    status: str
    """Scorer-specific verdict: passed / failed / timeout (HumanEval); valid / invalid / empty (SWE-bench);
    ``error`` for every benchmark when the scorer could not judge (excluded from success rates)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """JSON-safe detail (stderr tail, diff statistics, sandbox limits, ...)."""
    seconds: float = 0.0


@dataclass(frozen=True)
class TaskTypes:
    """Where issues' task types come from: the experiment's declared source (`DatasetConfig`), not a guess.
    Affinity routing and S/F only mean something when task types do."""

    category_map: dict[str, str] = field(default_factory=dict)
    """Category → task type."""
    by: str = "category"
    """``category`` (a row's category, else ``categories``, else the benchmark's shipped map) or ``repo``."""
    categories: dict[str, str] = field(default_factory=dict)
    """Instance id → category from the user's ``dataset.categories_file``, for rows that carry none."""


class Benchmark(Protocol):
    """A pluggable benchmark: every benchmark-specific rule of swarmq, in one object."""

    name: str
    id_field: str
    """The row field holding the instance id (``task_id`` for HumanEval, ``instance_id`` for SWE-bench)."""

    required_fields: tuple[str, ...]
    """Fields every row must hold as non-empty text; checked before ``to_issue`` is called."""

    export_per_stream: bool
    """Its own format takes one prediction per instance, so it is exported one stream at a time, and of
    ``generation.samples`` only sample 0 (whose verdicts `import-eval` sets)."""

    rules: tuple[str, ...]
    """Success rules of its own (`success.rule`), besides ``scorer`` and ``non_empty``; ``scorer`` means the
    first of them, or the benchmark's one verdict when it has none."""

    def bundled_rows(self) -> list[dict[str, Any]]:
        """Rows shipped with swarmq or a package (used when ``source: bundled``)."""
        ...

    def bundled_revision(self) -> str:
        """Which bundled rows these are (``sha256:`` of the shipped file), recorded with each experiment."""
        ...

    def to_issue(self, row: dict[str, Any], types: TaskTypes) -> Issue:
        """Turn one validated row into an Issue; raise ValueError (one line) for a row it cannot use."""
        ...

    def prompt(self, issue: Issue, examples: Sequence[Example], *, chat: bool, system: str | None) -> Prompt:
        """The prompt for ``issue`` with an agent's few-shot ``examples`` (chat messages when ``chat``)."""
        ...

    def stops(self, chat: bool) -> tuple[str, ...]:
        """Stop strings this benchmark adds to the model's own end-of-generation tokens."""
        ...

    def example(self, example_id: str, issue: Issue, completion: str, *, chat: bool) -> Example:
        """What a success adds to the agent's buffer: the problem as later prompts frame it, and the
        solution."""
        ...

    def score(self, issue: Issue, completion: str, *, chat: bool, rule: str) -> Score:
        """Judge one completion under ``rule`` (``scorer`` or one of `rules`). Bad model output is a failed
        score; a scorer that cannot run (sandbox, repository, harness) is ``status="error"``, never a
        failure."""
        ...

    def self_test(self) -> str | None:
        """None when this benchmark's scorer can run on this machine, else why not (one line). Every worker
        runs it at start and refuses to start on a failure: outcomes must never be judged by a broken
        scorer."""
        ...

    def export_line(self, row: dict[str, Any], experiment: str) -> dict[str, Any]:
        """One line of this benchmark's own evaluation format (`swarmq export --format <name>`)."""
        ...
