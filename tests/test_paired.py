"""Paired, clustered statistics: honest intervals and tests when replicates repeat their outcomes."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from swarmq.report import signflip
from swarmq.report.paired import (
    ClusteredRate,
    PairedComparison,
    holm,
    paired_from_sums,
    rate_from_counts,
)
from swarmq.report.signflip import sign_flip_p
from swarmq.report.stats import fisher_compare


def clustered_rate(outcomes: Mapping[str, Sequence[bool]]) -> ClusteredRate:
    """`rate_from_counts` from each issue's own outcomes (``outcomes[issue]``, across replicates)."""
    return rate_from_counts([(len(v), sum(v)) for v in outcomes.values()])


def paired_compare(
    pairs: Sequence[tuple[str, bool, bool]], *, permutations: int = 10_000, seed: int = 0
) -> PairedComparison:
    """`paired_from_sums` from matched pairs ``(issue, a_success, b_success)``, one per issue and replicate."""
    by_issue: dict[str, list[int]] = defaultdict(list)
    for issue, a, b in pairs:
        by_issue[issue].append(int(a) - int(b))
    return paired_from_sums(
        [(len(d), sum(d)) for d in by_issue.values()], permutations=permutations, seed=seed
    )


def simulate(
    rng: np.random.Generator, issues: int = 40, replicates: int = 3, repeat: float = 0.9
) -> np.ndarray:
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
            (str(i), bool(out[0, r, i]), bool(out[1, r, i]))
            for r in range(out.shape[1])
            for i in range(out.shape[2])
        ]
        paired_hits += paired_compare(pairs, permutations=400, seed=sim).p < 0.05
        a, b, n = int(out[0].sum()), int(out[1].sum()), out[0].size
        fisher_hits += fisher_compare(a, n, b, n).p_fisher < 0.05
    assert paired_hits / sims <= 0.07, paired_hits / sims
    assert (
        fisher_hits / sims > 0.08
    )  # the independent-outcomes test it replaces is visibly miscalibrated here


def test_paired_comparison_numbers() -> None:
    # Three issues, two replicates: A wins issue x twice, B wins issue y once, issue z ties.
    pairs = [
        ("x", True, False),
        ("x", True, False),
        ("y", False, True),
        ("y", True, True),
        ("z", False, False),
        ("z", True, True),
    ]
    c = paired_compare(pairs)
    assert (c.pairs, c.issues) == (6, 3)
    assert c.diff == pytest.approx(1 / 6)
    # Exact flips of the issue sums (+2, −1): |±2 ± 1| >= 1 in all four cases.
    assert c.p == 1.0
    residuals = [2 - 2 / 6, -1 - 2 / 6, 0 - 2 / 6]
    assert c.se == pytest.approx((3 / 2 * sum(r * r for r in residuals)) ** 0.5 / 6)
    assert c.mdd80 == pytest.approx(2.8016 * c.se, rel=1e-3)
    assert paired_compare(
        [("x", True, False)] * 3 + [(f"i{k}", True, False) for k in range(7)]
    ).p == pytest.approx(
        2 / 2**8
    )  # eight issues all favour A: only the two all-same-sign flips are as extreme


def test_clustered_rate_and_holm() -> None:
    r = clustered_rate({"a": [True, True], "b": [False, False], "c": [True, False]})
    assert r.rate == pytest.approx(0.5) and r.n == 6 and r.clusters == 3
    assert r.ci95[0] < 0.5 < r.ci95[1]
    assert clustered_rate({"a": [True]}).ci95 == (0.0, 1.0)  # one issue: no spread to estimate
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# --- The sign-flip null: exact, its normal approximation, the Monte Carlo fallback -------------------


def _enumerated_p(sums: list[int]) -> float:
    """The definition: the share of all 2^k sign vectors at least as extreme as the observed one."""
    signs = np.array(list(itertools.product((1, -1), repeat=len(sums))))
    return float(np.mean(np.abs(signs @ np.array(sums)) >= abs(sum(sums))))


def test_exact_null_is_the_enumeration() -> None:
    rng = np.random.default_rng(1)
    for k in range(1, 15):
        for _ in range(25):
            sums = [int(x) for x in rng.integers(-7, 8, size=k) if x != 0]
            if sums:
                assert sign_flip_p(sums) == _enumerated_p(sums), sums  # exact: multiples of 2^-k
    assert sign_flip_p([]) == sign_flip_p([0, 0]) == sign_flip_p([3, -3]) == 1.0


def test_exact_null_agrees_with_sign_flip_draws() -> None:
    """Beyond enumeration: the exact p against 200,000 draws of the old Monte Carlo test, on 120 issues."""
    rng = np.random.default_rng(2)
    for shift in (0.0, 0.4, 0.8):
        d = np.round(rng.normal(shift, 3.0, size=120)).astype(int)
        exact = sign_flip_p(d)
        drawn = signflip.monte_carlo_p(d[d != 0], 200_000, 0)
        assert abs(exact - drawn) <= 4 * math.sqrt(exact * (1 - exact) / 200_000) + 1e-5, (
            shift,
            exact,
            drawn,
        )


def _moderate(rng: np.random.Generator, kind: int) -> np.ndarray:
    """Issue sums of a few hundred to two thousand issues, shaped as replicates shape them."""
    if kind == 0:
        return rng.integers(-3, 4, size=int(rng.integers(300, 600)))  # few replicates: small values
    if kind == 1:
        return rng.choice([-4, -2, 2, 4, 6], size=int(rng.integers(300, 600)))  # all even: lattice step 4
    if kind == 2:
        return np.round(rng.normal(rng.uniform(-0.3, 0.3), 3.0, size=int(rng.integers(1200, 2000)))).astype(
            int
        )
    k = int(rng.integers(1200, 2000))
    return rng.poisson(3, size=k) * rng.choice([-1, 1], size=k, p=[0.48, 0.52])


def test_normal_approximation_agrees_with_the_exact_null_on_moderate_data() -> None:
    """Where `sign_flip_p` would use it (variance spread over many issues), the continuity-corrected normal p
    is within 1e-3 of the exact one everywhere and within 3e-4 below p = 0.2 (`normal_p`'s bound: ~2e-4
    near 0.05), far inside the Monte Carlo error it replaces (0.0022 at p = 0.05 for 10,000 draws)."""
    rng = np.random.default_rng(3)
    checked, small = 0, 0
    for trial in range(240):
        d = _moderate(rng, trial % 4)
        a, observed = np.abs(d[d != 0]), abs(int(d.sum()))
        if observed == 0 or a.max() ** 2 > signflip.LINDEBERG * float(np.square(a.astype(float)).sum()):
            continue
        exact, normal = signflip.exact_p(a, observed), signflip.normal_p(a, observed)
        assert abs(exact - normal) <= (3e-4 if exact < 0.2 else 1e-3), (trial, exact, normal)
        checked, small = checked + 1, small + (exact < 0.2)
    assert checked > 200 and small > 60  # the comparison covered both regions and every kind


def test_sign_flip_p_past_its_budget() -> None:
    rng = np.random.default_rng(4)
    spread = rng.integers(-3, 5, size=600)  # many issues, none dominant: within `LINDEBERG`
    a, observed = np.abs(spread[spread != 0]), abs(int(spread.sum()))
    assert sign_flip_p(spread) == signflip.exact_p(a, observed)
    assert sign_flip_p(spread, exact_work=0) == signflip.normal_p(a, observed)
    # One issue carries most of the variance: no normal approximation, seeded draws instead.
    dominated = np.array([400, *rng.integers(-2, 3, size=50)])
    assert sign_flip_p(dominated, exact_work=0, permutations=2000, seed=5) == signflip.monte_carlo_p(
        dominated[dominated != 0], 2000, 5
    )
    d = dominated[dominated != 0]
    assert abs(sign_flip_p(dominated, exact_work=0, permutations=20_000) - sign_flip_p(dominated)) < 0.02
    assert sign_flip_p(d) == signflip.exact_p(np.abs(d), abs(int(d.sum())))


def test_exact_null_at_figure_5_scale() -> None:
    """492 issues × 678 replicates (bench figure 5) fit the exact budget; a strong effect gets a p far below
    what 10,000 draws could show (their floor was 1/10,001), never 0."""
    rng = np.random.default_rng(6)
    d = rng.binomial(678, 0.33, size=492) - rng.binomial(678, 0.30, size=492)
    a, observed = np.abs(d[d != 0]), abs(int(d.sum()))
    assert a.size * ((int(a.sum()) - observed) // 2 + 1) <= signflip.EXACT_WORK
    assert 0.0 < sign_flip_p(d) < 1e-20
    assert sign_flip_p(np.full(1000, 5)) == 2.0**-999  # all one sign: the observed vector and its mirror only
    assert sign_flip_p(np.full(2000, 5)) == math.ulp(0.0)  # 2^-1999 underflows: the smallest double, not 0
