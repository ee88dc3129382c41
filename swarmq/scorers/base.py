"""The result every scorer returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Score:
    success: bool
    """Whether the outcome counts as a success for the swarm update and results."""
    status: str
    """Scorer-specific verdict: passed / failed / timeout / error (HumanEval); valid / invalid / empty (SWE-bench)."""
    detail: dict[str, Any] = field(default_factory=dict)
    """JSON-safe detail (stderr tail, diff statistics, sandbox limits, ...)."""
    seconds: float = 0.0
