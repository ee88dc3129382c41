"""Paired, clustered statistics: honest intervals and tests when replicates repeat their outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from swarmq.report.paired import clustered_rate, holm, paired_compare
from swarmq.report.stats import fisher_compare


def simulate(rng: np.random.Generator, issues: int = 40, replicates: int = 3, repeat: float = 0.9) -> np.ndarray:
    """Outcomes [condition, replicate, issue] with no true effect: both conditions draw from each issue's own
    difficulty, and each replicate repeats its condition's first outcome with probability ``repeat``."""
    difficulty = rng.uniform(0.0, 1.0, size=issues)
    first = rng.random((2, 1, issues)) < difficulty
    fresh = rng.random((2, replicates, issues)) < difficulty
    keep = rng.random((2, replicates, issues)) < repeat
    return np.where(keep, first, fresh)


def test_no_effect_false_positive_rate_with_correlated_replicates() -> None:
    """Miller (2024): treating 3 × 40 correlated outcomes as 120 independent ones inflates false positives;
    the paired sign-flip test on matched (issue, replicate) pairs keeps them near the nominal 5%."""
    rng = np.random.default_rng(20241104)
    sims, paired_hits, fisher_hits = 2000, 0, 0
    for sim in range(sims):
        out = simulate(rng)
        pairs = [
            (str(i), bool(out[0, r, i]), bool(out[1, r, i])) for r in range(out.shape[1]) for i in range(out.shape[2])
        ]
        paired_hits += paired_compare(pairs, permutations=400, seed=sim).p < 0.05
        a, b, n = int(out[0].sum()), int(out[1].sum()), out[0].size
        fisher_hits += fisher_compare(a, n, b, n).p_fisher < 0.05
    assert paired_hits / sims <= 0.07, paired_hits / sims
    assert fisher_hits / sims > 0.08  # the independent-outcomes test it replaces is visibly miscalibrated here


def test_paired_comparison_numbers() -> None:
    # Three issues, two replicates: A wins issue x twice, B wins issue y once, issue z ties.
    pairs = [("x", True, False), ("x", True, False), ("y", False, True), ("y", True, True), ("z", False, False),
             ("z", True, True)]  # fmt: skip
    c = paired_compare(pairs)
    assert (c.pairs, c.issues) == (6, 3)
    assert c.diff == pytest.approx(1 / 6)
    # Exact flips of the issue sums (+2, −1): |±2 ± 1| >= 1 in all four cases.
    assert c.p == 1.0
    residuals = [2 - 2 / 6, -1 - 2 / 6, 0 - 2 / 6]
    assert c.se == pytest.approx((3 / 2 * sum(r * r for r in residuals)) ** 0.5 / 6)
    assert c.mdd80 == pytest.approx(2.8016 * c.se, rel=1e-3)
    assert paired_compare([("x", True, False)] * 3 + [(f"i{k}", True, False) for k in range(7)]).p == pytest.approx(
        2 / 2**8
    )  # eight issues all favour A: only the two all-same-sign flips are as extreme


def test_clustered_rate_and_holm() -> None:
    r = clustered_rate({"a": [True, True], "b": [False, False], "c": [True, False]})
    assert r.rate == pytest.approx(0.5) and r.n == 6 and r.clusters == 3
    assert r.ci95[0] < 0.5 < r.ci95[1]
    assert clustered_rate({"a": [True]}).ci95 == (0.0, 1.0)  # one issue: no spread to estimate
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
