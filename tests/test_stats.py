"""Results statistics against hand computations and scipy."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
from scipy import stats as sps

from swarmq.report.stats import (
    Measure,
    context_divergence,
    cramers_v,
    fisher_compare,
    mean_spread,
    specialization,
    specialization_from_matrix,
    wilson_interval,
)

Z = 1.959963984540054


def wilson_by_hand(s: int, n: int) -> tuple[float, float]:
    """Wilson (1927) written the other common way: (2ns + z² ± z·sqrt(z² + 4ns(1-p))) / 2(n + z²)."""
    p = s / n
    root = Z * math.sqrt(Z * Z + 4 * n * p * (1 - p))
    return ((2 * s + Z * Z - root) / (2 * (n + Z * Z)), (2 * s + Z * Z + root) / (2 * (n + Z * Z)))


def functional_differentiation(table: Mapping[int, Mapping[str, int]]) -> Measure:
    """`cramers_v` of ``table[agent_id][task_type]`` (successes), agents and types sorted."""
    types = sorted({tt for row in table.values() for tt in row})
    return cramers_v(np.array([[table[a].get(tt, 0) for tt in types] for a in sorted(table)]))


def labels(counts: Mapping[tuple[int, str], int]) -> tuple[list[int], list[str]]:
    """One (agent, task type) label pair per job of an (agent, task type) → jobs table, cell by cell."""
    agents = [a for (a, _), k in counts.items() for _ in range(k)]
    types = [t for (_, t), k in counts.items() for _ in range(k)]
    return agents, types


# --- Wilson ---------------------------------------------------------------------------------------


def test_wilson_seven_of_ten() -> None:
    # 0.3968 .. 0.8922 as usually tabulated; scipy's binomtest gives the same Wilson bounds.
    lo, hi = wilson_interval(7, 10)
    assert lo == pytest.approx(0.396778, abs=1e-6)
    assert hi == pytest.approx(0.892209, abs=1e-6)
    ci = sps.binomtest(7, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)


@pytest.mark.parametrize(("s", "n"), [(0, 1), (1, 1), (0, 10), (10, 10), (3, 7), (50, 100), (1, 1000)])
def test_wilson_matches_other_form(s: int, n: int) -> None:
    lo, hi = wilson_interval(s, n)
    want_lo, want_hi = wilson_by_hand(s, n)
    assert lo == pytest.approx(max(0.0, want_lo), abs=1e-12)
    assert hi == pytest.approx(min(1.0, want_hi), abs=1e-12)
    assert 0.0 <= lo <= s / n <= hi <= 1.0


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


# --- Fisher / Newcombe ----------------------------------------------------------------------------


def test_fisher_p_matches_scipy_on_random_tables() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(50):
        a_n, b_n = (int(x) for x in rng.integers(1, 60, size=2))
        a_s, b_s = int(rng.integers(0, a_n + 1)), int(rng.integers(0, b_n + 1))
        c = fisher_compare(a_s, a_n, b_s, b_n)
        want = sps.fisher_exact([[a_s, a_n - a_s], [b_s, b_n - b_s]]).pvalue
        assert c.p_fisher == pytest.approx(min(1.0, want), rel=1e-12)
        assert c.diff == pytest.approx(a_s / a_n - b_s / b_n)
        lo, hi = c.diff_ci95
        assert -1.0 <= lo <= c.diff <= hi <= 1.0


def test_newcombe_hybrid_by_hand() -> None:
    # Newcombe (1998) example (h): 56/70 vs 48/80, method 10 gives 0.0524 .. 0.3339.
    c = fisher_compare(56, 70, 48, 80)
    assert c.diff == pytest.approx(0.2)
    assert c.diff_ci95[0] == pytest.approx(0.0524, abs=1e-4)
    assert c.diff_ci95[1] == pytest.approx(0.3339, abs=1e-4)


def test_fisher_identical_groups() -> None:
    c = fisher_compare(5, 10, 5, 10)
    assert c.p_fisher == 1.0
    assert c.diff == 0.0
    assert c.diff_ci95[0] < 0 < c.diff_ci95[1]


def test_fisher_empty_group_is_no_evidence() -> None:
    for args in [(0, 0, 3, 5), (3, 5, 0, 0), (0, 0, 0, 0)]:
        c = fisher_compare(*args)
        assert (c.p_fisher, c.diff, c.diff_ci95) == (1.0, 0.0, (-1.0, 1.0))
    with pytest.raises(ValueError):
        fisher_compare(6, 5, 1, 2)


# --- Specialization -------------------------------------------------------------------------------


def test_specialization_perfect() -> None:
    agents = [0, 0, 1, 1, 2, 2] * 10
    types = ["math", "math", "string", "string", "list", "list"] * 10
    s, p, _ = specialization(agents, types, permutations=500, seed=1)
    assert s == pytest.approx(1.0)
    assert p == pytest.approx(1 / 501)  # no shuffle reaches S = 1; the +1 keeps p above 0


def test_specialization_independent() -> None:
    # Each agent sees every type equally often: H(T|A) = H(T).
    agents = [0, 0, 1, 1] * 5
    types = ["math", "string", "math", "string"] * 5
    s, p, _ = specialization(agents, types, permutations=200, seed=0)
    assert s == pytest.approx(0.0, abs=1e-12)
    assert p == 1.0  # every shuffle is at least as specialised


def test_specialization_single_type_or_empty() -> None:
    assert specialization([0, 1, 2], ["math"] * 3) == (0.0, 1.0, 0.0)
    assert specialization([], []) == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        specialization([0], ["math", "string"])


def test_specialization_intermediate_by_hand() -> None:
    # Agent 0: 3 math, 1 string; agent 1: 1 math, 3 string. H(T) = 1 bit;
    # H(T|A) = H(3/4, 1/4) = 0.811278 bits, so S = 0.188722.
    agents = [0, 0, 0, 0, 1, 1, 1, 1]
    types = ["math", "math", "math", "string", "math", "string", "string", "string"]
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    s, _, _ = specialization(agents, types, permutations=10)
    assert s == pytest.approx(1 - h, abs=1e-12)
    assert s == pytest.approx(0.188722, abs=1e-6)


def test_specialization_permutation_p_large_for_random_labels() -> None:
    rng = np.random.default_rng(5)
    agents = [int(x) for x in rng.integers(0, 3, size=300)]
    types = [str(x) for x in rng.choice(["math", "string", "list", "logic"], size=300)]
    s, p, expected = specialization(agents, types, permutations=300, seed=2)
    assert p > 0.05
    # Random routing is what these labels are: S sits near its random-routing expectation, which is not 0
    # (S is biased upward in a finite sample) — the reference S is read against.
    assert 0.0 < expected < 0.05 and abs(s - expected) < 0.02


def test_expected_specialization_large_sample_matches_the_permutation_mean() -> None:
    rng = np.random.default_rng(7)
    agents = [int(x) for x in rng.integers(0, 4, size=3000)]
    types = [str(x) for x in rng.choice(["math", "string", "list"], size=3000)]
    counts: dict[tuple[int, str], int] = {}
    for a, t in zip(agents, types, strict=True):
        counts[(a, t)] = counts.get((a, t), 0) + 1
    exact = specialization(agents, types, permutations=300, seed=0)
    big = specialization_from_matrix(_matrix(counts), exact_limit=10)
    assert big.expected == pytest.approx(exact.expected, rel=0.15)


def test_specialization_is_seeded() -> None:
    agents = [0, 0, 0, 1, 1, 1, 0, 1]
    types = ["math", "math", "string", "string", "string", "math", "math", "string"]
    assert specialization(agents, types, seed=3) == specialization(agents, types, seed=3)


# --- Functional differentiation -------------------------------------------------------------------


def test_differentiation_matches_scipy_on_random_tables() -> None:
    rng = np.random.default_rng(99)
    for _ in range(30):
        r, c = (int(x) for x in rng.integers(2, 5, size=2))
        m = rng.integers(1, 30, size=(r, c))
        table = {a: {f"t{j}": int(m[a, j]) for j in range(c)} for a in range(r)}
        v, p = functional_differentiation(table)
        chi2, want_p, _, _ = sps.chi2_contingency(m, correction=False)
        assert p == pytest.approx(want_p, rel=1e-10)
        assert v == pytest.approx(math.sqrt(chi2 / (m.sum() * (min(r, c) - 1))), rel=1e-10)
        assert 0.0 <= v <= 1.0


def test_differentiation_perfect_diagonal() -> None:
    v, p = functional_differentiation({0: {"math": 20, "string": 0}, 1: {"math": 0, "string": 20}})
    assert v == pytest.approx(1.0)
    assert p < 1e-6


def test_differentiation_drops_zero_rows_and_columns() -> None:
    table = {0: {"math": 4, "string": 1, "list": 0}, 1: {"math": 2, "string": 5, "list": 0}, 2: {}}
    reduced = {0: {"math": 4, "string": 1}, 1: {"math": 2, "string": 5}}
    assert functional_differentiation(table) == functional_differentiation(reduced)


@pytest.mark.parametrize(
    "table",
    [
        {},
        {0: {}},
        {0: {"math": 3, "string": 4}},  # one agent
        {0: {"math": 3}, 1: {"math": 5}},  # one type
        {0: {"math": 3, "string": 0}, 1: {"math": 0, "string": 0}},  # 1x1 after dropping zeros
        {0: {"math": 0}, 1: {"string": 0}},
    ],
)
def test_differentiation_degenerate(table: dict[int, dict[str, int]]) -> None:
    assert functional_differentiation(table) == (0.0, 1.0)


# --- Context divergence ---------------------------------------------------------------------------


def test_divergence_identical_buffers_is_zero() -> None:
    buf = ["def add(a, b): return a + b", "def rev(s): return s[::-1]"]
    assert context_divergence({0: buf, 1: list(buf), 2: list(buf)}) == pytest.approx(0.0, abs=1e-12)


def test_divergence_disjoint_vocabularies_is_one() -> None:
    assert context_divergence({0: ["alpha beta"], 1: ["gamma delta"], 2: ["epsilon"]}) == 1.0


def test_divergence_small_case_by_hand() -> None:
    # Docs "a b" and "A, c": N = 2; idf(a) = ln(3/3) + 1 = 1, idf(b) = idf(c) = ln(3/2) + 1.
    # cos = 1 / (1 + idf_b²).
    idf_b = math.log(1.5) + 1
    want = 1 - 1 / (1 + idf_b**2)
    assert context_divergence({0: ["a b"], 1: ["A, c"]}) == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(0.663903, abs=1e-6)


def test_divergence_joins_buffer_entries_and_counts_terms() -> None:
    # Entries are concatenated, so splitting text across entries changes nothing.
    assert context_divergence({0: ["x y", "x"], 1: ["x y x"]}) == pytest.approx(0.0, abs=1e-12)


def test_divergence_skips_empty_buffers() -> None:
    assert context_divergence({}) == 0.0
    assert context_divergence({0: ["only one"], 1: [], 2: ["  ", "!!"]}) == 0.0
    assert context_divergence({0: ["a"], 1: [], 2: ["b"]}) == 1.0


# --- Summaries ------------------------------------------------------------------------------------


def test_mean_spread() -> None:
    assert mean_spread([0.5]) == (0.5, 0.0)
    mean, sd = mean_spread([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert sd == pytest.approx(math.sqrt(5 / 3))
    with pytest.raises(ValueError):
        mean_spread([])


def test_specialization_from_matrix_matches_exact_and_large_sample() -> None:
    # Cells in the matrix's row-major order: agents, then task types, sorted.
    counts = {(0, "math"): 30, (0, "string"): 5, (1, "math"): 4, (1, "string"): 25, (2, "list"): 12}
    table = np.array([[0, 30, 5], [0, 4, 25], [12, 0, 0]])
    exact = specialization(*labels(counts), permutations=200, seed=1)
    assert specialization_from_matrix(table, permutations=200, seed=1) == exact
    # Above the limit: the same S, and the G-test p (scipy's log-likelihood chi-square on the same table).
    big = specialization_from_matrix(table, exact_limit=10)
    assert big.value == pytest.approx(exact.value)
    _, p, _, _ = sps.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    assert big.p == pytest.approx(p)


# --- Many at once: the vectorized forms results uses -----------------------------------------------


def test_wilson_intervals_are_wilson_interval_float_for_float() -> None:
    from swarmq.report.stats import wilson_intervals

    rng = np.random.default_rng(11)
    n = np.concatenate([[0, 1, 1, 7, 10, 1000], rng.integers(0, 5_000_000, size=500)])
    s = np.concatenate([[0, 0, 1, 7, 3, 1], [int(rng.integers(0, k + 1)) for k in n[6:]]])
    lo, hi = wilson_intervals(s, n)
    assert [(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)] == [
        wilson_interval(int(x), int(k)) for x, k in zip(s, n, strict=True)
    ]
    with pytest.raises(ValueError):
        wilson_intervals(np.array([3]), np.array([2]))


def _random_counts(
    rng: np.random.Generator, agents: int, types: int, scale: int
) -> dict[tuple[int, str], int]:
    """An (agent, task type) → jobs table in sorted key order, some cells missing."""
    counts = {}
    for a in sorted(int(x) for x in rng.choice(10_000, size=agents, replace=False)):
        for t in sorted(f"type-{j}" for j in range(types)):
            if rng.random() < 0.8:
                counts[(a, t)] = int(rng.integers(1, scale))
    return counts


def _matrix(counts: dict[tuple[int, str], int]) -> np.ndarray:
    agents, types = sorted({a for a, _ in counts}), sorted({t for _, t in counts})
    return np.array([[counts.get((a, t), 0) for t in types] for a in agents])


def test_specialization_from_matrix_is_specialization_of_its_cells_in_sorted_order() -> None:
    rng = np.random.default_rng(12)
    for agents, types, scale in ((4, 3, 20), (9, 5, 40), (30, 4, 60)):
        counts = _random_counts(rng, agents, types, scale)
        # The permutation test takes the same cells in the same order: the same draws, the same numbers.
        assert specialization_from_matrix(_matrix(counts), permutations=200, seed=3) == specialization(
            *labels(counts), permutations=200, seed=3
        )


def test_g_test_specialization_by_hand() -> None:
    """The vectorized G-test path against its formula written out cell by cell."""
    m = np.array([[30, 5, 0], [4, 25, 1], [0, 2, 12], [0, 0, 0]])
    n = m.sum()
    col = m.sum(axis=0) / n
    h_type = -sum(p * math.log2(p) for p in col if p > 0)
    h_cond = sum(
        row.sum() / n * -sum(x / row.sum() * math.log2(x / row.sum()) for x in row if x > 0)
        for row in m
        if row.sum() > 0
    )
    got = specialization_from_matrix(m, exact_limit=10)
    assert got.value == pytest.approx(1 - h_cond / h_type, rel=1e-12)
    g = 2 * n * math.log(2) * (h_type - h_cond)
    assert got.p == pytest.approx(float(sps.chi2.sf(g, (3 - 1) * (3 - 1))), rel=1e-9)
    assert specialization_from_matrix(np.zeros((0, 0), dtype=int)) == (0.0, 1.0, 0.0)
    assert specialization_from_matrix(np.array([[50_000], [50_000]])) == (0.0, 1.0, 0.0)


def test_agent_type_tables_do_not_depend_on_the_order_cells_arrive_in() -> None:
    """results' S and F tables: rows by (replicate, agent), columns by task type in code-point order (the
    permutation test of S takes the cells in that order), whatever order SQL returned them in."""
    from swarmq.report.queries import AgentTypeCells
    from swarmq.report.results import agent_type_tables

    cells = [
        (r, a, t, 3 * r + a + len(t), r + a)
        for r in (1, 0)
        for a in (2, 0, 1)
        for t in ("math", "Zeta", "list")
    ]
    tables = [
        agent_type_tables(AgentTypeCells(*(list(c) for c in zip(*order, strict=True))))
        for order in (cells, cells[::-1], sorted(cells, key=lambda c: c[2]))
    ]
    jobs, successes = tables[0]
    for j, s in tables[1:]:
        assert (j == jobs).all() and (s == successes).all()
    # Row 0 is replicate 0 agent 0, column 0 is "Zeta" (upper case sorts first by code point).
    assert jobs[0].tolist() == [0 + len("Zeta"), 0 + len("list"), 0 + len("math")]
    assert jobs[5].tolist() == [3 + 2 + 4, 3 + 2 + 4, 3 + 2 + 4] and successes[5].tolist() == [3, 3, 3]
