"""What every benchmark provides: rows → issues, plus how its prompts are framed and how it is scored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


class Benchmark(Protocol):
    """A pluggable benchmark. Adding an MBPP-like set means one small module implementing this."""

    name: str
    id_field: str
    """The row field holding the instance id (``task_id`` for HumanEval, ``instance_id`` for SWE-bench)."""

    required_fields: tuple[str, ...]
    """Fields every row must hold as non-empty text; checked before ``to_issue`` is called."""

    def bundled_rows(self) -> list[dict[str, Any]]:
        """Rows shipped with swarmq or a package (used when ``source: bundled``)."""
        ...

    def to_issue(self, row: dict[str, Any], category_map: dict[str, str]) -> Issue:
        """Turn one validated row into an Issue; raise ValueError (one line) for a row it cannot use."""
        ...
