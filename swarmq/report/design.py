"""Planning an experiment for the results table's test: the difference a design can detect, the replicates a
difference needs, and the warning for accumulating conditions with too few swarms to generalise.

The model (the one `paired` assumes): outcome y(c, r, i) = issue effect + swarm effect + noise. At pass
rate p (σ² = p(1 − p)) with intra-issue correlation ρ (the share of σ² that is the issue's difficulty, shared
by every condition and replicate) and a swarm effect of sd ``swarm_sd`` on the logit scale
(τ = σ²(1 − ρ)·swarm_sd on the rate scale: the mean slope E[p_i(1 − p_i)] of the logistic over the
issues, times the sd; one per accumulating (condition, replicate)), the mean paired
difference over I issues × R replicates has variance 2σ²(1 − ρ)/(IR) + k·τ²/R, k the number of accumulating
conditions in the pair (0–2).
Pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_REPLICATES = 5
"""Swarms needed to estimate the variance between swarms: with fewer, comparisons of accumulating
conditions are conditional on these swarms (the table says so, `enqueue` warns)."""


@dataclass(frozen=True)
class Design:
    issues: int
    replicates: int
    conditions: int
    accumulating: int
    """Accumulating conditions in the pair planned for (0, 1 or 2)."""


@dataclass(frozen=True)
class Plan:
    se: float
    df: int
    two_way: bool
    """Whether the table's test takes the variance between swarms (≥ `MIN_REPLICATES` replicates)."""
    detectable: float | None
    """At 80% power after Holm across the table's pairs; None: no difference could be detected."""


def pairs(conditions: int) -> int:
    return conditions * (conditions - 1) // 2


def plan(design: Design, rate: float, icc: float, swarm_sd: float) -> Plan:
    """What the results table's comparison of two conditions at ``rate`` would detect with this design."""
    from swarmq.report import paired  # numpy, scipy: `enqueue` imports this module for its warning only

    if not (0 < rate < 1 and 0 <= icc < 1 and swarm_sd >= 0):
        raise ValueError("need 0 < rate < 1, 0 <= icc < 1 and swarm_sd >= 0")
    sigma2 = rate * (1 - rate)
    tau2 = (sigma2 * (1 - icc) * swarm_sd) ** 2  # the mean slope of the logistic, E[p_i(1 − p_i)], times sd
    n = design.issues * design.replicates
    two_way = design.accumulating > 0 and design.replicates >= MIN_REPLICATES
    # Below MIN_REPLICATES the table's test is conditional on the swarms run: their variance is not in it.
    var = 2 * sigma2 * (1 - icc) / n + (design.accumulating * tau2 / design.replicates if two_way else 0.0)
    df = (min(design.issues, design.replicates) if two_way else design.issues) - 1
    se = math.sqrt(var)
    return Plan(se, df, two_way, paired.detectable(se, df, max(1, pairs(design.conditions)), estimated=False))


def replicates_needed(
    design: Design, rate: float, icc: float, swarm_sd: float, difference: float, *, most: int = 200
) -> int | None:
    """The fewest replicates with which the table's test detects ``difference`` at 80% power (None: not within
    ``most``). Accumulating conditions count only from `MIN_REPLICATES` swarms, where the table
    stops calling its comparison conditional on these swarms."""
    start = MIN_REPLICATES if design.accumulating else 1
    for r in range(start, most + 1):
        p = plan(Design(design.issues, r, design.conditions, design.accumulating), rate, icc, swarm_sd)
        if p.detectable is not None and p.detectable <= difference:
            return r
    return None


def replicates_warning(replicates: int, accumulating: list[str]) -> str | None:
    """What `enqueue` says when accumulating conditions get fewer swarms than the table needs to
    generalise."""
    if not accumulating or replicates >= MIN_REPLICATES:
        return None
    return (
        f"{', '.join(accumulating)} accumulate{'s' if len(accumulating) == 1 else ''}: each replicate is one "
        f"swarm, and {replicates} replicate(s) are too few to estimate the variance between swarms; "
        "`results` will call their comparisons conditional on these swarms (use "
        f"{MIN_REPLICATES} or more to generalise; `swarmq plan` sizes it)"
    )
