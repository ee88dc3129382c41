"""Statistics for outcomes that are not independent: replicates share issues, conditions share issues and
seeds, and each replicate of an accumulating condition is one swarm whose buffers shape all of its later
outcomes. Following Miller (2024), "Adding Error Bars to Evals" (arXiv:2411.00640), and Cameron, Gelbach &
Miller (2011) for two-way clustering:

- the model: outcome y(c, r, i) of condition c, replicate r, issue i has an issue effect (shared by every
  condition and replicate) and, for an accumulating condition, a swarm effect per (c, r);
- a rate or a paired difference is a mean over (replicate, issue) cells; its variance is clustered by issue,
  and also by replicate (two-way: V_issue + V_replicate − V_cell) when ``two_way`` (an accumulating condition
  with at least `design.MIN_REPLICATES` swarms); with fewer, the inference is conditional on these swarms;
- intervals and tests use t with G − 1 degrees of freedom (G: the fewest clusters of a clustered dimension),
  and both come from one statistic, so an interval excludes 0 exactly when p < 0.05;
- a variance never falls below its small-sample floor (Agresti–Min's half a pseudo-pair on each side for a
  difference; for a rate, Clopper–Pearson at the effective sample size, whose design effect is at least that
  of the cells with half a pseudo-issue on each side, so it stays open at 0 % and 100 % and is not read as 1
  from a few scattered successes), so no interval has zero width;
- "detectable" is the difference the printed test reaches with 80 % power after Holm, at the median-unbiased
  standard error (few swarms make the printed one noisy).

Pure functions on numpy arrays: one value per (replicate, issue) cell, as `queries.cells` reads them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.80
Z95 = 1.959963984540054


@dataclass(frozen=True)
class ClusteredRate:
    rate: float
    ci95: tuple[float, float]
    n: int
    clusters: int
    """Issues."""
    df: int
    """Degrees of freedom of the t quantile (0: too few clusters, the interval is (0, 1))."""


@dataclass(frozen=True)
class PairedComparison:
    """Condition A against B on matched (issue, replicate) cells."""

    pairs: int
    issues: int
    replicates: int
    diff: float
    """Mean of (A success − B success) over the cells."""
    se: float
    """Clustered standard error (by issue, or by issue and replicate), never below its floor."""
    df: int
    ci95: tuple[float, float]
    p: float
    """Two-sided p of diff / se against t(df): the interval's own test."""
    two_way: bool
    """Whether the variance between swarms (replicates) is in the standard error."""


def t_quantile(q: float, df: int) -> float:
    return float(sps.t.ppf(q, df))


def _codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes 0..G−1 of the labels, and G. Non-negative integer labels (issue codes, replicates) are
    coded by counting, in one pass: a million cells sort slowly."""
    x = np.asarray(labels)
    if x.size and np.issubdtype(x.dtype, np.integer) and int(x.min()) >= 0 and int(x.max()) <= 4 * x.size:
        present = np.bincount(x) > 0
        return (np.cumsum(present) - 1)[x], int(present.sum())
    _, codes = np.unique(x, return_inverse=True)
    codes = codes.ravel()
    return codes, int(codes.max(initial=-1)) + 1


def groups(labels: np.ndarray | Sequence[int]) -> int:
    """How many distinct labels (clusters) there are."""
    return _codes(np.asarray(labels))[1]


def cluster_variance(
    residuals: np.ndarray, issue: np.ndarray, replicate: np.ndarray, *, two_way: bool
) -> tuple[float, int]:
    """Variance of a mean of n cells with these residuals, and its degrees of freedom: CR1 clustered by issue
    (G/(G−1) · Σ_g (Σ e)² / n²), or two-way by issue and replicate (V_issue + V_replicate − V_cell, each with
    its own G/(G−1); V_issue + V_replicate bounds it below when that difference is not positive). df = G − 1
    of the dimension with fewer clusters; (nan, 0) with fewer than two."""
    e = np.asarray(residuals, dtype=float)
    n = e.size
    parts = [(issue, 1.0)] + (
        [(replicate, 1.0), (issue * (int(replicate.max(initial=0)) + 1) + replicate, -1.0)] if two_way else []
    )
    total, smallest, terms = 0.0, n, []
    for labels, sign in parts:
        codes, g = _codes(labels)
        if sign > 0:
            smallest = min(smallest, g)
        if g < 2:
            if sign > 0:
                return float("nan"), 0
            continue
        sums = np.bincount(codes, weights=e, minlength=g)
        v = g / (g - 1) * float(sums @ sums) / (n * n)
        terms.append(v)
        total += sign * v
    if two_way and total <= 0.0:
        total = max(terms[0], terms[1])
    return total, smallest - 1


def _floor_variance(diffs: np.ndarray) -> float:
    """Agresti–Min (2005): the variance of a paired difference of proportions with half a pseudo-pair added
    to each discordant side; for differences in [−1, 1], their positive and negative parts play n10, n01."""
    n = diffs.size
    p10 = (float(np.clip(diffs, 0, None).sum()) + 0.5) / (n + 1)
    p01 = (float(np.clip(-diffs, 0, None).sum()) + 0.5) / (n + 1)
    return (p10 + p01 - (p10 - p01) ** 2) / (n + 1)


def compare(
    diffs: np.ndarray | Sequence[float],
    issue: np.ndarray | Sequence[int],
    replicate: np.ndarray | Sequence[int],
    *,
    two_way: bool,
) -> PairedComparison:
    """A against B from one difference per matched (replicate, issue) cell (A success − B success; a pass@k
    difference works alike): mean, clustered standard error (`cluster_variance`, never below
    `_floor_variance`), t(df) interval and p."""
    d = np.asarray(diffs, dtype=float)
    iss, rep = np.asarray(issue), np.asarray(replicate)
    n, issues, reps = d.size, groups(iss), groups(rep)
    two_way = two_way and reps >= 2
    if n == 0:
        return PairedComparison(0, 0, 0, 0.0, float("nan"), 0, (-1.0, 1.0), 1.0, two_way)
    diff = float(d.mean())
    var, df = cluster_variance(d - diff, iss, rep, two_way=two_way)
    if df < 1:
        return PairedComparison(n, issues, reps, diff, float("nan"), 0, (-1.0, 1.0), 1.0, two_way)
    se = math.sqrt(max(var, _floor_variance(d)))
    half = t_quantile(1 - ALPHA / 2, df) * se
    p = float(2 * sps.t.sf(abs(diff) / se, df))
    return PairedComparison(
        n, issues, reps, diff, se, df, (max(-1.0, diff - half), min(1.0, diff + half)), p, two_way
    )


def detectable(
    se: float, df: int, family: int, *, alpha: float = ALPHA, power: float = POWER, estimated: bool = True
) -> float | None:
    """The smallest true difference the printed test (t(df), two-sided) detects with ``power`` at ``alpha``
    after Holm across ``family`` comparisons (its first step, alpha/family: the bound every comparison must
    clear to be sure of rejecting), given this standard error: λ · σ, with λ the noncentrality at which the
    noncentral t(df) exceeds the critical value with probability ``power``. None where that is beyond the
    range of a difference (1): no effect of any size could be detected.

    σ is the true standard error. With ``estimated`` (the table's: ``se`` read from the data) σ is taken as
    se · √(df / median χ²(df)), its median-unbiased estimate under the t test's own model
    (se² ~ σ²·χ²(df)/df): λ · se itself falls below λ · σ in more than half of all runs (by 4 % of σ at
    df 9, 9 % at df 4: few swarms), and the difference printed would be reached with 73–77 % power.
    `design.plan` passes the model's σ (``estimated=False``)."""
    if df < 1 or math.isnan(se):
        return None
    sigma = se * math.sqrt(df / float(sps.chi2.median(df))) if estimated else se
    m = noncentrality(df, alpha / max(1, family), power) * sigma
    return m if m < 1.0 else None


@functools.lru_cache(maxsize=1024)
def noncentrality(df: int, alpha: float, power: float) -> float:
    """λ with P(|T'| > t_{1−α/2}) = power for T' noncentral t(df, λ) (a root search: cached, as a table asks
    for the same few (df, alpha) again and again)."""
    crit = t_quantile(1 - alpha / 2, df)

    def shortfall(lam: float) -> float:
        # The wrong-tail rejection is below P(Z < −λ); scipy returns NaN for it at some λ > 5 (df small),
        # where it is under 1e-9: read as 0.
        wrong = float(sps.nct.cdf(-crit, df, lam))
        return float(sps.nct.sf(crit, df, lam)) + (0.0 if math.isnan(wrong) else wrong) - power

    upper = crit + t_quantile(power, df) + 1.0
    if math.isnan(shortfall(upper)):  # scipy's noncentral t fails far in the tail: out of reach anyway
        return math.inf
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-10))


def rate(
    successes: np.ndarray | Sequence[float],
    issue: np.ndarray | Sequence[int],
    replicate: np.ndarray | Sequence[int],
    *,
    two_way: bool,
) -> ClusteredRate:
    """Success rate over (replicate, issue) cells (a success per cell, or a pass@k in [0, 1]) with a 95%
    interval that accounts for clustering (Korn & Graubard 1998): Clopper–Pearson at the effective sample size
    n_eff = n / deff, times (z / t_df)² for the few clusters. The design effect deff is the larger of the
    data's, V·n / p(1 − p) (V: `cluster_variance`), and its small-sample floor (`_floor_design_effect`), so
    n_eff is at most n and never read from successes too few to show how alike an issue's replicates are."""
    y = np.asarray(successes, dtype=float)
    iss, rep = np.asarray(issue), np.asarray(replicate)
    n, issues = y.size, groups(iss)
    if n == 0:
        return ClusteredRate(float("nan"), (0.0, 1.0), 0, 0, 0)
    p = float(y.mean())
    var, df = cluster_variance(y - p, iss, rep, two_way=two_way and groups(rep) >= 2)
    if df < 1:
        return ClusteredRate(p, (0.0, 1.0), n, issues, 0)
    deff = max(var * n / (p * (1 - p)) if 0 < p < 1 else 0.0, _floor_design_effect(y, iss))
    n_eff = min(float(n), n / deff)
    lo, hi = clopper_pearson(p, n_eff * (Z95 / t_quantile(1 - ALPHA / 2, df)) ** 2)
    return ClusteredRate(p, (lo, hi), n, issues, df)


FLOOR_ISSUES = 0.5
"""Pseudo-issues, on each side, of `_floor_design_effect`."""


def _floor_design_effect(y: np.ndarray, issue: np.ndarray) -> float:
    """The design effect of the rate (clustered by issue) with half a pseudo-issue added on each side: one
    whose R = n / issues replicates all succeed and one whose replicates all fail (R: the mean number of
    cells of an issue). Why: the variance between issues is read from the issues with successes, and when
    they are few (a rate near 0 %, or 100 %, with several replicates) the data cannot show how alike an
    issue's replicates are: a handful of successes that each fell in a different issue look independent
    (deff 1, n_eff the number of cells) even where replicates repeat their issue's outcome (the audit of
    issue 25: 45 issues × 10 replicates at ~5 %, correlation 0.9, covered 90 %; 20 issues 81 %). The
    pseudo-issues keep a prior of strong correlation that the data outweighs as successes accumulate, the
    way Agresti–Min's pseudo-pair does for a difference (`_floor_variance`); at 0 % and 100 % they give
    n_eff close to the number of issues (every replicate of an issue alike, the least information the cells
    could hold). With one replicate an issue is a cell and the floor is about 1."""
    n = y.size
    codes, g = _codes(issue)
    r, w = n / g, FLOOR_ISSUES
    p = (float(y.sum()) + w * r) / (n + 2 * w * r)
    sums = np.bincount(codes, weights=y - p, minlength=g)
    s = float(sums @ sums) + w * (r * (1 - p)) ** 2 + w * (r * p) ** 2
    var = (g + 2 * w) / (g + 2 * w - 1) * s / (n + 2 * w * r) ** 2
    return var * (n + 2 * w * r) / (p * (1 - p))


def clopper_pearson(p: float, n: float) -> tuple[float, float]:
    """Clopper–Pearson's 95% interval of a proportion p over a (non-integer, effective) sample size n: the
    beta quantiles at x = p·n successes, pinned to contain p."""
    x = p * n
    lo = 0.0 if x <= 0 else float(sps.beta.ppf(ALPHA / 2, x, n - x + 1))
    hi = 1.0 if x >= n else float(sps.beta.ppf(1 - ALPHA / 2, x + 1, n - x))
    return (min(p, lo), max(p, hi))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error across the pairs compared), in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
