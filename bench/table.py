"""The one markdown table: per row, median [min–max] of the baseline, of swarmq, and of their ratio."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.measure import FigureResult, Row, summary

HEADER = ("Figure", "Metric", "Baseline", "swarmq", "swarmq ÷ baseline", "Target", "Met")


def fmt_number(x: float) -> str:
    if math.isnan(x):
        return "nan"
    a = abs(x)
    if x == int(x) and a < 1e6:
        return f"{int(x):,}"
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_values(values: Sequence[float] | None, unit: str = "") -> str:
    s = summary(values)
    if s is None:
        return "–"
    suffix = f" {unit}" if unit else ""
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt_number(s["median"]) + suffix
    return f"{fmt_number(s['median'])}{suffix} [{fmt_number(s['min'])}–{fmt_number(s['max'])}]"


def _met(row: Row) -> str:
    return {True: "yes", False: "**no**", None: ""}[row.met]


def render(figures: Sequence[FigureResult]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for fig in figures:
        label = f"{fig.key}: {fig.title}"
        if fig.error:
            lines.append(f"| {label} | error: {fig.error.replace('|', '/')} | | | | | |")
            continue
        for row in fig.rows:
            cells = (
                label,
                f"{row.metric}",
                fmt_values(row.baseline, row.unit),
                fmt_values(row.swarmq, row.unit),
                fmt_values(row.ratio),
                row.target or "",
                _met(row),
            )
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            label = ""
    return "\n".join(lines)
