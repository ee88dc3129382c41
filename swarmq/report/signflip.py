"""The sign-flip test of a paired comparison (``p_sign_flip`` in `results`: issue-level, so valid
conditional on the swarms run; the table's test is `paired.compare`'s t): under no effect each issue's
matched pairs may swap A and B together, so each issue's summed difference d_i keeps or flips its sign with
probability 1/2, independently. The two-sided p is P(|Σ ε_i d_i| ≥ |Σ d_i|) over those 2^k sign vectors.

The null is computed exactly, not sampled: the d_i are integers, so Σ ε_i |d_i| = A − 2U, where A = Σ |d_i|
and U is the sum of the flipped |d_i|, and U's distribution is a subset-sum count (one vector pass per issue).
Only when that would take more than `EXACT_WORK` steps does the test fall back to the normal approximation
(when it is as good, `normal_p`) or to seeded Monte Carlo draws. Pure functions on integer sums.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EXACT_WORK = 20_000_000
"""Largest issues × tail length (⌊(A − observed)/2⌋ + 1, see `exact_p`) the exact null is computed for:
enough for figure 5's million outcomes and for any SWE-bench run, at a small cost (bench/README.md)."""
LINDEBERG = 0.01
"""Past `EXACT_WORK`, the normal approximation is used when no issue carries more than this share of the null
variance (max d_i² ≤ LINDEBERG · Σ d_i²); see `normal_p` for what that buys."""


def sign_flip_p(
    sums: Sequence[int] | np.ndarray,
    *,
    permutations: int = 10_000,
    seed: int = 0,
    exact_work: int = EXACT_WORK,
) -> float:
    """Two-sided p of the sign-flip test on issues' integer summed differences (ties count as extreme).

    Exact (`exact_p`) up to ``exact_work``; beyond, `normal_p` when the variance is spread over many issues
    (`LINDEBERG`), else ``permutations`` seeded draws, p = (1 + hits) / (1 + draws)."""
    d = np.asarray(sums, dtype=np.int64)
    a = np.abs(d[d != 0])
    observed = abs(int(d.sum()))
    if a.size == 0 or observed == 0:
        return 1.0  # every sign vector is as extreme as a zero sum
    if a.size * ((int(a.sum()) - observed) // 2 + 1) <= exact_work:
        return exact_p(a, observed)
    if int(a.max()) ** 2 <= LINDEBERG * float(np.square(a, dtype=np.float64).sum()):
        return normal_p(a, observed)
    return monte_carlo_p(d[d != 0], permutations, seed)


def exact_p(a: np.ndarray, observed: int) -> float:
    """P(|Σ ε_i a_i| ≥ observed) for positive integers ``a`` and observed > 0, by counting subset sums.

    With A = Σ a_i and U the sum of the flipped a_i, |A − 2U| ≥ observed holds for U ≤ L = ⌊(A − observed)/2⌋
    and, by the symmetry U ↔ A − U, equally often for U ≥ A − L: p = 2·P(U ≤ L). P(U = u) is built one issue
    at a time (p ← (p + p shifted by a_i) / 2) and only up to L, since mass never moves down. Each value is a
    multiple of 2^-k: up to 53 issues the arithmetic is exact, beyond it rounding is relative (about k·1e-16).
    p is never below 2^(1−k), the observed signs and their mirror image (the smallest double where that
    underflows): a strong effect over many issues is not reported as impossible."""
    lower = (int(a.sum()) - observed) // 2
    if lower < 0:
        return 0.0  # cannot happen for the observed sum itself; kept for direct callers
    p = np.zeros(lower + 1)
    p[0] = 1.0
    top = 0  # P(U = u) is 0 above top: smallest a_i first keeps the passes short
    for x in np.sort(a).tolist():
        top = min(top + x, lower)
        if x <= top:
            p[x : top + 1] = p[x : top + 1] + p[: top + 1 - x]
        p[: top + 1] *= 0.5
    floor = math.ldexp(1.0, max(1 - int(a.size), -1074))
    return min(1.0, max(2.0 * float(p.sum()), floor))


def normal_p(a: np.ndarray, observed: int) -> float:
    """The normal approximation to `exact_p`, with a continuity correction: Σ ε_i a_i has mean 0, variance
    σ² = Σ a_i², and lives on a lattice of step 2g (g = gcd of the a_i), so p ≈ erfc((observed − g) / (σ√2)).

    Why it is as valid as the exact null where it is used: the null is symmetric, so the Edgeworth expansion
    has no skewness term and its first correction is the kurtosis one, κ₄/σ⁴ = −2 Σ a_i⁴ / (Σ a_i²)², at most
    2·max a_i²/Σ a_i² = 2·`LINDEBERG` = 0.02 in size. At |z| = 1.96 that moves each tail by at most
    φ(z)·|z³ − 3z|·0.02/24 ≈ 8e-5: p near 0.05 is off by under 2e-4, a tenth of the Monte Carlo error of
    10,000 draws (0.0022). tests/test_paired.py checks it against `exact_p`."""
    g = int(np.gcd.reduce(a))
    sigma = math.sqrt(float(np.square(a, dtype=np.float64).sum()))
    return min(1.0, math.erfc((observed - g) / (sigma * math.sqrt(2.0))))


def monte_carlo_p(sums: np.ndarray, permutations: int, seed: int) -> float:
    """``permutations`` seeded sign vectors over the non-zero ``sums``, p = (1 + hits) / (1 + draws) (never
    0): the fallback for a null too large to count whose variance one issue dominates."""
    d = np.asarray(sums, dtype=np.float64)
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(permutations, d.size))
    hits = int(np.sum(np.abs(signs @ d) >= abs(d.sum()) - 1e-9))  # ties count as at least as extreme
    return (1 + hits) / (1 + permutations)
