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


def _conditional_entropy_terms(
    replicates: np.ndarray, agents: np.ndarray, types: np.ndarray, n_types: int
) -> tuple[float, float]:
    """H(type | replicate) and H(replicate-agent), in bits: the parts of S that within-replicate shuffles
    keep."""
    n_rep = int(replicates.max(initial=-1)) + 1
    h_type = _entropy(np.bincount(replicates * n_types + types)) - _entropy(
        np.bincount(replicates, minlength=n_rep)
    )
    return h_type, _entropy(np.bincount(agents))


SHUFFLE_CHUNK = 100
"""Shuffles computed together (a shuffles × jobs array): bounds the memory of a permutation test."""


def specialization(
    agent_ids: Sequence[int] | np.ndarray,
    task_types: Sequence[str] | np.ndarray,
    *,
    replicates: Sequence[int] | np.ndarray | None = None,
    permutations: int = 1000,
    seed: int = 0,
) -> Specialization:
    """How much knowing the agent tells about the task type, within a replicate:
    S = I(agent; type | replicate) / H(type | replicate), in bits.

    Pairs are (agent that took a job, the job's task type), with the job's replicate (None: one replicate); an
    agent is an agent of one replicate (the same id in two replicates is two agents). S = 1 when each type
    goes to its own agents, 0 when routing ignores type, and exactly 0 with one agent per replicate; S = 0
    (p = 1.0) with one task type or no job. The reference, ``expected``, is the mean S of ``permutations``
    seeded shuffles of the agent ids within each replicate (random routing with the same agent loads and
    task mix in every swarm); p = (1 + #{S_null >= S}) / (1 + permutations), never exactly 0
    (Phipson & Smyth 2010)."""
    if len(agent_ids) != len(task_types):
        raise ValueError(f"{len(agent_ids)} agent ids but {len(task_types)} task types")
    n = len(agent_ids)
    if n == 0:
        return Specialization(0.0, 1.0, 0.0)
    reps = np.zeros(n, dtype=np.int64) if replicates is None else np.asarray(replicates)
    if len(reps) != n:
        raise ValueError(f"{n} agent ids but {len(reps)} replicates")
    _, r = np.unique(reps, return_inverse=True)
    _, a = np.unique(
        np.stack([r.ravel(), np.unique(np.asarray(agent_ids), return_inverse=True)[1].ravel()]),
        axis=1,
        return_inverse=True,
    )
    types, t = np.unique(np.asarray(task_types), return_inverse=True)
    r, a, t = r.ravel(), a.ravel(), t.ravel()
    n_types, n_agents = len(types), int(a.max()) + 1
    h_type, h_agent = _conditional_entropy_terms(r, a, t, n_types)
    if h_type <= 1e-12:
        return Specialization(0.0, 1.0, 0.0)
    observed = _s_values((a * n_types + t)[None, :], n_agents * n_types, h_agent, h_type)[0]
    if n_agents == int(r.max()) + 1:  # one agent per replicate: the agent says nothing the replicate does not
        return Specialization(0.0, 1.0, 0.0)
    rng = np.random.default_rng(seed)
    order = np.argsort(r, kind="stable")
    a_sorted, t_sorted, r_sorted = a[order], t[order], r[order]
    null = []
    for start in range(0, permutations, SHUFFLE_CHUNK):
        k = min(SHUFFLE_CHUNK, permutations - start)
        # Within-replicate shuffles: sort random keys inside each replicate's block (blocks stay in place).
        shuffle = np.argsort(r_sorted[None, :] + rng.random((k, n)), axis=1)
        null.append(
            _s_values(a_sorted[shuffle] * n_types + t_sorted[None, :], n_agents * n_types, h_agent, h_type)
        )
    values = np.concatenate(null) if null else np.zeros(0)
    # The tolerance counts shuffles that reproduce the observed table despite float rounding.
    hits = int(np.sum(values >= observed - 1e-12))
    return Specialization(
        observed, (1 + hits) / (1 + permutations), float(values.mean()) if values.size else 0.0
    )


def _s_values(joint_codes: np.ndarray, cells: int, h_agent: float, h_type: float) -> np.ndarray:
    """S of each row of (agent, type) cell codes: 1 − (H(agent, type) − H(agent)) / H(type | replicate)."""
    k = joint_codes.shape[0]
    counts = np.bincount((joint_codes + cells * np.arange(k)[:, None]).ravel(), minlength=k * cells).reshape(
        k, cells
    )
    h_joint = _row_entropies(counts)
    return np.clip(1.0 - (h_joint - h_agent) / h_type, 0.0, 1.0)


EXACT_LIMIT = 20_000
"""Above this many jobs the permutation test of S gives way to its large-sample equivalent (G-test)."""


def specialization_from_matrix(
    m: np.ndarray,
    *,
    row_replicates: np.ndarray | Sequence[int] | None = None,
    permutations: int = 1000,
    seed: int = 0,
    exact_limit: int = EXACT_LIMIT,
) -> Specialization:
    """S from an agents × task types table of jobs, as results queries deliver it, rows and columns in
    sorted order, each row's replicate in ``row_replicates`` (None: one replicate).

    Up to ``exact_limit`` jobs this is `specialization` of one (agent, type) label pair per job, taken cell
    by cell in row-major order. Beyond, the permutation p converges to the G-test's: under random routing
    within each replicate, 2·n·ln 2·I(agent; type | replicate) (I in bits) is chi-square with
    Σ_r (agents_r − 1)(types_r − 1) degrees of freedom, so that p is reported instead, and the expected S is
    that chi-square's mean over 2·n·ln 2·H(type | replicate)."""
    m = np.asarray(m, dtype=np.int64)
    reps = np.zeros(m.shape[0], dtype=np.int64) if row_replicates is None else np.asarray(row_replicates)
    if int(m.sum()) <= exact_limit:
        rows, cols = np.nonzero(m)
        k = m[rows, cols]
        return specialization(
            np.repeat(rows, k),
            np.repeat(cols, k),
            replicates=np.repeat(reps[rows], k),
            permutations=permutations,
            seed=seed,
        )
    return _specialization_g_test(m, reps)


def _row_entropies(m: np.ndarray) -> np.ndarray:
    """`_entropy` of every row of ``m`` (0 for an empty row)."""
    totals = m.sum(axis=1, keepdims=True)
    p = np.divide(m, totals, out=np.zeros(m.shape), where=totals > 0)
    return -(p * np.log2(p, out=np.zeros(m.shape), where=p > 0)).sum(axis=1)


def _specialization_g_test(counts: np.ndarray, row_replicates: np.ndarray) -> Specialization:
    """The large-sample S of `specialization_from_matrix`."""
    m = np.asarray(counts, dtype=float)
    n = float(m.sum())
    g_bits, h_type, df = 0.0, 0.0, 0
    for rep in np.unique(row_replicates):
        block = m[row_replicates == rep]
        nr = float(block.sum())
        if nr == 0:
            continue
        h_t = _entropy(block.sum(axis=0))
        totals = block.sum(axis=1)
        h_cond = float((totals / nr * _row_entropies(block)).sum())
        h_type += nr / n * h_t
        g_bits += nr * (h_t - h_cond)
        df += max(0, int((totals > 0).sum()) - 1) * max(0, int((block.sum(axis=0) > 0).sum()) - 1)
    if h_type <= 1e-12 or df == 0:
        return Specialization(0.0, 1.0, 0.0)
    s = min(1.0, max(0.0, g_bits / n / h_type))
    g = 2.0 * math.log(2.0) * g_bits
    expected = min(1.0, df / (2.0 * n * math.log(2.0)) / h_type)
    return Specialization(s, float(sps.chi2.sf(g, df)), expected)


def cramers_v(successes: np.ndarray) -> Measure:
    """Cramér's V and the chi-square p of independence of an agents × task types matrix of successes. All-zero
    rows and columns are dropped first; a table smaller than 2x2 after that gives V = 0.0, p = 1.0."""
    m = np.asarray(successes, dtype=float)
    if m.size:
        m = m[m.sum(axis=1) > 0][:, m.sum(axis=0) > 0]
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 2:
        return Measure(0.0, 1.0)
    chi2, p, _, _ = sps.chi2_contingency(m, correction=False)
    v = math.sqrt(float(chi2) / (m.sum() * (min(m.shape) - 1)))
    return Measure(v, float(p))


def _cramers_v_rows(tables: np.ndarray) -> np.ndarray:
    """`cramers_v`'s V of each of many agents × types tables at once (draws × agents × types)."""
    t = np.asarray(tables, dtype=float)
    rows, cols = t.sum(axis=2), t.sum(axis=1)
    total = rows.sum(axis=1)
    expected = rows[:, :, None] * cols[:, None, :] / np.where(total > 0, total, 1.0)[:, None, None]
    chi2 = np.where(expected > 0, (t - expected) ** 2 / np.where(expected > 0, expected, 1.0), 0.0).sum(
        axis=(1, 2)
    )
    k = np.minimum((rows > 0).sum(axis=1), (cols > 0).sum(axis=1)) - 1
    return np.where(k >= 1, np.sqrt(chi2 / np.where(total * k > 0, total * k, 1.0)), 0.0)


class Differentiation(NamedTuple):
    """F: Cramér's V of the agents × types success table, its reference under no agent effect, and p."""

    value: float | None
    """None with one agent per replicate: there is nothing to differentiate."""
    p: float
    expected: float | None


def differentiation(
    jobs: np.ndarray,
    successes: np.ndarray,
    *,
    row_replicates: np.ndarray | Sequence[int] | None = None,
    permutations: int = 1000,
    seed: int = 0,
) -> Differentiation:
    """Whether agents differ in success beyond what their task types explain. V alone mostly measures routing
    (an agent given more of an easy type has more successes there), so it is read against its reference: the
    V of the same jobs with each (replicate, task type)'s successes dealt at random among its jobs, i.e. under
    no agent effect within task type; ``expected`` is the mean V of ``permutations`` seeded deals and p =
    (1 + #{V_null >= V}) / (1 + permutations). Rows are (replicate, agent), ``row_replicates`` their
    replicates (None: one)."""
    jobs_m, succ = np.asarray(jobs, dtype=np.int64), np.asarray(successes, dtype=np.int64)
    reps = np.zeros(jobs_m.shape[0], dtype=np.int64) if row_replicates is None else np.asarray(row_replicates)
    if jobs_m.shape[0] == 0 or np.unique(reps).size == jobs_m.shape[0]:
        return Differentiation(None, 1.0, None)
    observed = cramers_v(succ).value
    rng = np.random.default_rng(seed)
    strata = [(np.flatnonzero(reps == rep), col) for rep in np.unique(reps) for col in range(jobs_m.shape[1])]
    values = []
    for start in range(0, permutations, SHUFFLE_CHUNK):
        k = min(SHUFFLE_CHUNK, permutations - start)
        draws = np.zeros((k, *jobs_m.shape), dtype=np.int64)
        for rows, col in strata:
            colors, drawn = jobs_m[rows, col], int(succ[rows, col].sum())
            if drawn:
                draws[:, rows, col] = rng.multivariate_hypergeometric(colors, drawn, size=k)
        values.append(_cramers_v_rows(draws))
    null = np.concatenate(values)
    hits = int(np.sum(null >= observed - 1e-12))
    return Differentiation(observed, (1 + hits) / (1 + permutations), float(null.mean()))


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
