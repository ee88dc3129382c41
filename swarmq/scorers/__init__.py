"""Scorers: one module per benchmark, each returning a :class:`Score`; ``score`` picks by benchmark name."""

from __future__ import annotations

from typing import Any

from swarmq.errors import ConfigError
from swarmq.scorers.base import Score
from swarmq.scorers.humaneval import score_humaneval
from swarmq.scorers.swebench import score_swebench

__all__ = ["Score", "score"]


def score(benchmark: str, issue_data: dict[str, Any], completion: str) -> Score:
    """Score one completion with its benchmark's scorer (HumanEval: in the sandbox, default limits)."""
    if benchmark == "humaneval":
        return score_humaneval(issue_data, completion)
    if benchmark == "swebench":
        return score_swebench(issue_data, completion)
    raise ConfigError(f"no scorer for benchmark {benchmark!r}; known: humaneval, swebench")
