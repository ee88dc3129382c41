"""Statistics for outcomes that are not independent: replicates share issues, conditions share issues and
seeds. Following Miller (2024), "Adding Error Bars to Evals" (arXiv:2411.00640), rates get intervals clustered
by issue, and conditions are compared on matched (issue, replicate) pairs: the mean paired difference with a
clustered standard error, an exact sign-flip test at the issue level (`signflip`), Holm-adjusted p across
pairs, and the difference the design could detect at 80% power. Pure functions on plain tuples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from swarmq.report.signflip import sign_flip_p

Z95 = 1.959963984540054
Z80 = 0.8416212335729143
"""One-sided normal quantile for 80% power."""


@dataclass(frozen=True)
class ClusteredRate:
    rate: float
    ci95: tuple[float, float]
    n: int
    clusters: int


@dataclass(frozen=True)
class PairedComparison:
    """Condition A against B on matched (issue, replicate) pairs."""

    pairs: int
    issues: int
    diff: float
    """Mean of (A success − B success) over the pairs."""
    se: float
    """Standard error clustered by issue."""
    ci95: tuple[float, float]
    p: float
    """Two-sided p of the sign-flip test: an issue's pairs flip together (under no effect, A and B swap)."""
    mdd80: float
    """The smallest difference this many pairs would detect with 80% power at 5% (two-sided)."""


def _cluster_se(residuals_by_cluster: Sequence[float], n: int) -> float:
    """CR1 standard error of a mean: sqrt(G/(G−1) · Σ_c r_c²) / n, with r_c a cluster's summed residuals."""
    g = len(residuals_by_cluster)
    if g < 2 or n == 0:
        return float("nan")
    return math.sqrt(g / (g - 1) * sum(r * r for r in residuals_by_cluster)) / n


def rate_from_counts(per_issue: Sequence[tuple[int, int]]) -> ClusteredRate:
    """Success rate over every outcome, with a 95% interval clustered by issue, from each issue's
    (outcomes, successes) across replicates, as a GROUP BY delivers them. Fewer than two issues: the
    interval is (0, 1)."""
    n = sum(k for k, _ in per_issue)
    if n == 0:
        return ClusteredRate(float("nan"), (0.0, 1.0), 0, 0)
    rate = sum(s for _, s in per_issue) / n
    se = _cluster_se([s - rate * k for k, s in per_issue], n)
    if math.isnan(se):
        return ClusteredRate(rate, (0.0, 1.0), n, len(per_issue))
    return ClusteredRate(rate, (max(0.0, rate - Z95 * se), min(1.0, rate + Z95 * se)), n, len(per_issue))


def paired_from_sums(
    per_issue: Sequence[tuple[int, int]], *, permutations: int = 10_000, seed: int = 0
) -> PairedComparison:
    """Compare A and B on matched (issue, replicate) pairs, from each issue's (matched pairs, summed
    A − B success difference), as SQL delivers them.

    The test statistic is the summed difference; under no effect each issue's pairs may swap A and B
    together, so the null distribution flips the sign of each issue's sum (`signflip.sign_flip_p`: exact;
    past its budget the normal approximation, or ``permutations`` seeded draws)."""
    n = sum(k for k, _ in per_issue)
    if n == 0:
        return PairedComparison(0, 0, 0.0, float("nan"), (-1.0, 1.0), 1.0, float("nan"))
    diff = sum(d for _, d in per_issue) / n
    se = _cluster_se([d - diff * k for k, d in per_issue], n)
    ci = (-1.0, 1.0) if math.isnan(se) else (max(-1.0, diff - Z95 * se), min(1.0, diff + Z95 * se))
    p = sign_flip_p([d for _, d in per_issue], permutations=permutations, seed=seed)
    return PairedComparison(n, len(per_issue), diff, se, ci, p, (Z95 + Z80) * se)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error across the pairs compared), in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
