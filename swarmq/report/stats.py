"""Statistics for results: pass-rate intervals, condition comparisons and swarm-structure measures.

Pure functions on counts and labels; the report layer fetches the data and formats the numbers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile."""


class Measure(NamedTuple):
    """A statistic and its p-value; unpacks as ``value, p = ...``."""

    value: float
    p: float


class Specialization(NamedTuple):
    """S, its permutation p-value, and the S that routing blind to task type would show on the same jobs
    (S is biased upward in small samples: compare it with ``expected``, not with 0)."""

    value: float
    p: float
    expected: float


@dataclass(frozen=True)
class Comparison:
    """Condition A against condition B: Fisher p, rate_a - rate_b and a 95% interval for it."""

    p_fisher: float
    diff: float
    diff_ci95: tuple[float, float]


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; honest near 0 and 1, where the Wald interval collapses.

    With ``n == 0`` nothing is known and the interval is the whole range, (0.0, 1.0).
    """
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0/n and n/n the bound is p itself in exact arithmetic; pin it so rounding cannot exclude p.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def wilson_intervals(successes: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """`wilson_interval` of many proportions at once (a results table of thousands of agents): the same
    operations in the same order, so each bound is the float `wilson_interval` returns."""
    s, k = np.asarray(successes, dtype=np.int64), np.asarray(n, dtype=np.int64)
    if np.any((s < 0) | (s > k)):
        raise ValueError("need 0 <= successes <= n for every proportion")
    lo, hi = np.zeros(k.shape), np.ones(k.shape)
    ok = k > 0
    s, k = s[ok], k[ok]
    p = s / k
    z2 = z * z
    denom = 1 + z2 / k
    centre = (p + z2 / (2 * k)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / k + z2 / (4 * k * k))
    lo[ok] = np.where(s == 0, 0.0, np.maximum(0.0, centre - half))
    hi[ok] = np.where(s == k, 1.0, np.minimum(1.0, centre + half))
    return lo, hi


def fisher_compare(a_successes: int, a_n: int, b_successes: int, b_n: int) -> Comparison:
    """Compare two pass rates: two-sided Fisher exact p and Newcombe's hybrid score CI of the difference.

    The CI is Newcombe (1998) method 10: with Wilson intervals (l1, u1) of rate_a and (l2, u2) of
    rate_b, diff - sqrt((a - l1)^2 + (u2 - b)^2) .. diff + sqrt((u1 - a)^2 + (b - l2)^2). It keeps
    good coverage for small n and rates near 0 or 1. If either group is empty there is no evidence:
    p = 1.0, diff = 0.0 and the CI is (-1.0, 1.0).
    """
    for s, n in ((a_successes, a_n), (b_successes, b_n)):
        if not 0 <= s <= n:
            raise ValueError(f"need 0 <= successes <= n, got {s}/{n}")
    if a_n == 0 or b_n == 0:
        return Comparison(p_fisher=1.0, diff=0.0, diff_ci95=(-1.0, 1.0))
    table = [[a_successes, a_n - a_successes], [b_successes, b_n - b_successes]]
    p_fisher = float(sps.fisher_exact(table, alternative="two-sided").pvalue)
    ra, rb = a_successes / a_n, b_successes / b_n
    la, ua = wilson_interval(a_successes, a_n)
    lb, ub = wilson_interval(b_successes, b_n)
    diff = ra - rb
    lo = diff - math.sqrt((ra - la) ** 2 + (ub - rb) ** 2)
    hi = diff + math.sqrt((ua - ra) ** 2 + (rb - lb) ** 2)
    return Comparison(p_fisher=min(1.0, p_fisher), diff=diff, diff_ci95=(max(-1.0, lo), min(1.0, hi)))


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def _specialization(agent_codes: np.ndarray, type_codes: np.ndarray, n_types: int, h_type: float) -> float:
    # H(T|A) = H(A,T) - H(A), from the joint counts of the (agent, type) pairs.
    joint = np.bincount(agent_codes * n_types + type_codes)
    h_agent = _entropy(np.bincount(agent_codes))
    return min(1.0, max(0.0, 1.0 - (_entropy(joint) - h_agent) / h_type))


def specialization(
    agent_ids: Sequence[int] | np.ndarray,
    task_types: Sequence[str] | np.ndarray,
    *,
    permutations: int = 1000,
    seed: int = 0,
) -> Specialization:
    """How much knowing the agent tells about the task type: S = 1 - H(type | agent) / H(type).

    Pairs are (agent that took a job, the job's task type), in bits. S = 1 when each type goes to its own
    agents, 0 when routing ignores type; S = 0 (p = 1.0) when there is one task type or no job. The
    p-value is a permutation test that shuffles agent ids (numpy ``default_rng(seed)``), computed as
    (1 + #{S_null >= S}) / (1 + permutations) so it is never exactly 0 (Phipson & Smyth 2010).
    """
    if len(agent_ids) != len(task_types):
        raise ValueError(f"{len(agent_ids)} agent ids but {len(task_types)} task types")
    if len(agent_ids) == 0:
        return Specialization(0.0, 1.0, 0.0)
    _, a = np.unique(np.asarray(agent_ids), return_inverse=True)
    types, t = np.unique(np.asarray(task_types), return_inverse=True)
    a, t = a.ravel(), t.ravel()
    h_type = _entropy(np.bincount(t))
    if h_type == 0.0:
        return Specialization(0.0, 1.0, 0.0)
    observed = _specialization(a, t, len(types), h_type)
    rng = np.random.default_rng(seed)
    null = [_specialization(rng.permutation(a), t, len(types), h_type) for _ in range(permutations)]
    # The tolerance counts shuffles that reproduce the observed table despite float rounding.
    hits = sum(v >= observed - 1e-12 for v in null)
    return Specialization(observed, (1 + hits) / (1 + permutations), float(np.mean(null)) if null else 0.0)


EXACT_LIMIT = 20_000
"""Above this many jobs the permutation test of S gives way to its large-sample equivalent (G-test)."""


def specialization_from_matrix(
    m: np.ndarray, *, permutations: int = 1000, seed: int = 0, exact_limit: int = EXACT_LIMIT
) -> Specialization:
    """S from an agents × task types table of jobs, as results queries deliver it, rows and columns in
    sorted order.

    Up to ``exact_limit`` jobs this is `specialization` of one (agent, type) label pair per job, taken cell
    by cell in row-major order (no Python loop over thousands of cells). Beyond, shuffling a million labels
    a thousand times costs minutes, and the permutation p converges to the G-test's: under independence
    2·n·ln 2·I(agent; type) (I in bits, = S·H(type)) is chi-square with (r-1)(c-1) degrees of freedom, so
    that p is reported instead, and the expected S under random routing is that chi-square's mean,
    (r-1)(c-1) / (2·n·ln 2), over H(type)."""
    m = np.asarray(m, dtype=np.int64)
    if int(m.sum()) <= exact_limit:
        rows, cols = np.nonzero(m)
        k = m[rows, cols]
        # Row and column indices relabel agents and types in sorted order, as `specialization` codes them.
        return specialization(np.repeat(rows, k), np.repeat(cols, k), permutations=permutations, seed=seed)
    return _specialization_g_test(m)


def _row_entropies(m: np.ndarray) -> np.ndarray:
    """`_entropy` of every row of ``m`` (0 for an empty row)."""
    totals = m.sum(axis=1, keepdims=True)
    p = np.divide(m, totals, out=np.zeros(m.shape), where=totals > 0)
    return -(p * np.log2(p, out=np.zeros(m.shape), where=p > 0)).sum(axis=1)


def _specialization_g_test(counts: np.ndarray) -> Specialization:
    """The large-sample S of `specialization_from_matrix`."""
    m = np.asarray(counts, dtype=float)
    n = float(m.sum())
    h_type = _entropy(m.sum(axis=0))
    if h_type == 0.0:
        return Specialization(0.0, 1.0, 0.0)
    totals = m.sum(axis=1)
    h_cond = float((totals / n * _row_entropies(m)).sum())
    s = 1.0 - h_cond / h_type
    r, c = int((totals > 0).sum()), int((m.sum(axis=0) > 0).sum())
    if r < 2 or c < 2:
        return Specialization(s, 1.0, 0.0)
    g = 2.0 * n * math.log(2.0) * (h_type - h_cond)
    df = (r - 1) * (c - 1)
    expected = min(1.0, df / (2.0 * n * math.log(2.0)) / h_type)
    return Specialization(s, float(sps.chi2.sf(g, df)), expected)


def differentiation_from_matrix(successes: np.ndarray) -> Measure:
    """Whether agents succeed on different task types: Cramér's V and the chi-square p of independence,
    from an agents × task types matrix of successes. All-zero rows and columns are dropped first; a table
    smaller than 2x2 after that has nothing to test and gives V = 0.0, p = 1.0."""
    m = np.asarray(successes, dtype=float)
    if m.size:
        m = m[m.sum(axis=1) > 0][:, m.sum(axis=0) > 0]
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 2:
        return Measure(0.0, 1.0)
    chi2, p, _, _ = sps.chi2_contingency(m, correction=False)
    v = math.sqrt(float(chi2) / (m.sum() * (min(m.shape) - 1)))
    return Measure(v, float(p))


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def context_divergence(buffers: Mapping[int, Sequence[str]]) -> float:
    """How different the agents' contexts became: D = 1 - mean pairwise cosine similarity of TF-IDF.

    Each agent's buffer entries are joined into one document; terms are lower-cased ``\\w+`` tokens,
    tf is the raw count and idf = ln((1 + N) / (1 + df)) + 1 (scikit-learn's smooth idf) over the N
    documents compared. Agents with no tokens are skipped: an empty buffer has no direction to compare.
    Fewer than two non-empty agents give D = 0.0.
    """
    docs = [Counter(_tokens("\n".join(buf))) for _, buf in sorted(buffers.items())]
    docs = [d for d in docs if d]
    if len(docs) < 2:
        return 0.0
    df = Counter(term for d in docs for term in d)
    idf = {term: math.log((1 + len(docs)) / (1 + k)) + 1 for term, k in df.items()}
    vectors = []
    for d in docs:
        vec = {term: count * idf[term] for term, count in d.items()}
        norm = math.sqrt(sum(x * x for x in vec.values()))
        vectors.append({term: x / norm for term, x in vec.items()})
    sims = [sum(x * v.get(term, 0.0) for term, x in u.items()) for u, v in combinations(vectors, 2)]
    return min(1.0, max(0.0, 1.0 - sum(sims) / len(sims)))


def divergence_null(buffers: Mapping[int, Sequence[str]], *, permutations: int = 200, seed: int = 0) -> float:
    """The D that the same examples would give, dealt to the agents at random (buffer sizes kept): the
    reference D is read against, since TF-IDF over few short texts is far from 0 even when nothing
    specialized. Mean of ``permutations`` seeded deals."""
    sizes = [len(buf) for _, buf in sorted(buffers.items())]
    pool = [text for _, buf in sorted(buffers.items()) for text in buf]
    if sum(1 for k in sizes if k) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(permutations):
        order = rng.permutation(len(pool))
        dealt, start = {}, 0
        for agent, k in enumerate(sizes):
            dealt[agent] = [pool[i] for i in order[start : start + k]]
            start += k
        total += context_divergence(dealt)
    return total / permutations


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) across replicates; the SD is 0.0 for one value."""
    if len(values) == 0:
        raise ValueError("mean_spread() needs at least one value")
    arr = np.asarray(values, dtype=float)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), sd
