"""What a figure reports: rows of (baseline, swarmq) samples over repeats, summarized as min/median/max."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def summary(values: Sequence[float] | None) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
        "values": list(values),
    }


def ratios(baseline: Sequence[float] | None, swarmq: Sequence[float] | None) -> list[float] | None:
    """swarmq ÷ baseline per repeat when both were measured in the same repeats (paired), else of medians."""
    if not baseline or not swarmq:
        return None
    if len(baseline) == len(swarmq):
        return [s / b if b else float("nan") for b, s in zip(baseline, swarmq, strict=True)]
    b = statistics.median(baseline)
    return [statistics.median(swarmq) / b] if b else None


@dataclass
class Row:
    metric: str
    unit: str
    baseline: list[float] | None
    swarmq: list[float] | None
    target: str | None = None
    """Human-readable target, e.g. ``ratio ≥ 0.98`` or ``≤ 5 ms``."""
    met: bool | None = None
    baseline_label: str = ""
    """What the baseline is, for the JSON and README (the table has no room for it)."""

    @property
    def ratio(self) -> list[float] | None:
        return ratios(self.baseline, self.swarmq)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["baseline"], d["swarmq"], d["ratio"] = (
            summary(self.baseline),
            summary(self.swarmq),
            summary(self.ratio),
        )
        return d


def median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def check(values: Sequence[float] | None, test: Callable[[float], bool]) -> bool | None:
    """Target check on the median of the repeats."""
    m = median(values)
    return None if m is None else bool(test(m))


@dataclass
class FigureResult:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "seconds": self.seconds,
            "error": self.error,
            "rows": [r.to_json() for r in self.rows],
            "details": self.details,
        }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out
