"""Paired, clustered statistics: honest intervals and tests when replicates repeat their outcomes and each
replicate of an accumulating condition is one swarm. The simulations run through the functions `swarmq
results` calls (`results.comparisons`, `results.clustered_intervals`, `results.swarm_metrics`)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import expit, logit

from swarmq.report import paired, signflip
from swarmq.report.queries import Cells
from swarmq.report.render import conditional_note, p_value
from swarmq.report.results import clustered_intervals, comparisons
from swarmq.report.signflip import sign_flip_p


def cells_of(y: np.ndarray, names: tuple[str, ...] = ("a", "b")) -> Cells:
    """Cells of outcomes ``y[condition, replicate, issue]`` (every cell judged in every condition)."""
    conds, reps, issues = y.shape
    return Cells(
        list(names),
        np.repeat(np.arange(reps), issues),
        np.tile(np.arange(issues), reps),
        [f"i{k}" for k in range(issues)],
        ["t"] * (reps * issues),
        np.ones((reps * issues, conds), dtype=bool),
        y.reshape(conds, -1).T.astype(bool),
    )


def swarm_null(
    rng: np.random.Generator, issues: int, replicates: int, sd: float, conds: int = 2
) -> np.ndarray:
    """No true effect: every condition shares each issue's Beta(0.5, 0.5) difficulty; each (condition,
    replicate) is one swarm with a logit-scale random effect of sd ``sd``."""
    base = logit(np.clip(rng.beta(0.5, 0.5, issues), 1e-6, 1 - 1e-6))
    swarm = rng.normal(0.0, sd, (conds, replicates, 1))
    return rng.random((conds, replicates, issues)) < expit(base + swarm)


def false_positive_rate(issues: int, replicates: int, sd: float, sims: int, seed: int) -> tuple[float, list]:
    rng = np.random.default_rng(seed)
    hits, last = 0, []
    for _ in range(sims):
        (c,) = last = comparisons(
            cells_of(swarm_null(rng, issues, replicates, sd)), ["a", "b"], {"a", "b"}, matched=True
        )
        hits += c["p_holm"] < 0.05
        assert (c["p_paired"] < 0.05) == (c["paired_ci95"][0] > 0 or c["paired_ci95"][1] < 0)
    return hits / sims, last


def test_swarm_variance_keeps_false_positives_nominal_with_ten_replicates() -> None:
    """Null, 40 issues × 10 replicates, swarm logit sd 0.5: the two-way clustered test rejects ≤ 6% of 2,000
    runs (the issue-clustered test it replaces rejected 15.5% at 3 replicates)."""
    rate, (c,) = false_positive_rate(40, 10, 0.5, 2000, seed=25)
    assert rate <= 0.06, rate
    assert c["two_way"] and not c["conditional"] and c["df"] == 9


def test_three_swarms_are_labelled_conditional() -> None:
    rng = np.random.default_rng(3)
    data = {
        "comparisons": comparisons(cells_of(swarm_null(rng, 40, 3, 0.5)), ["a", "b"], {"b"}, matched=True),
        "replicates_run": 3,
    }
    assert data["comparisons"][0]["conditional"] and not data["comparisons"][0]["two_way"]
    note = conditional_note(data)
    assert note is not None and "conditional on these swarms" in note and "3 swarm" in note
    plain = comparisons(cells_of(swarm_null(rng, 40, 3, 0.0)), ["a", "b"], set(), matched=True)
    assert conditional_note({"comparisons": plain}) is None  # no condition accumulates: no swarms to vary


def test_ten_issues_one_replicate_interval_and_test_agree() -> None:
    """Null, 10 issues × 1 replicate: the interval excludes 0 in ≤ 6% of runs, and exactly when p < 0.05."""
    rng = np.random.default_rng(10)
    sims, excluded = 2000, 0
    for _ in range(sims):
        p = rng.uniform(0, 1, 10)
        y = rng.random((2, 1, 10)) < p
        (c,) = comparisons(cells_of(y), ["a", "b"], set(), matched=True)
        lo, hi = c["paired_ci95"]
        excluded += lo > 0 or hi < 0
        assert (lo > 0 or hi < 0) == (c["p_paired"] < 0.05), c
        assert hi > lo
    assert excluded / sims <= 0.06, excluded / sims


def clustered_rate_coverage(
    rng: np.random.Generator, a: float, b: float, issues: int, reps: int, repeat: float, sims: int
) -> tuple[float, list[list[float]]]:
    """Coverage of the true mean rate a / (a + b) by the printed interval of a condition that does not
    accumulate (issue difficulty Beta(a, b)), when each replicate repeats its issue's first outcome with
    probability ``repeat``; and every interval printed."""
    true, hits, printed = a / (a + b), 0, []
    for _ in range(sims):
        p = rng.beta(a, b, issues)
        first, fresh = rng.random((1, 1, issues)) < p, rng.random((1, reps, issues)) < p
        y = np.where(rng.random((1, reps, issues)) < repeat, first, fresh)
        (g,) = groups = [{"condition": "a"}]
        clustered_intervals(cells_of(y, ("a",)), groups, set(), matched=True)
        lo, hi = g["ci95_clustered"]
        hits += lo <= true <= hi
        printed.append(g["ci95_clustered"])
    return hits / sims, printed


@pytest.mark.parametrize(
    ("issues", "reps", "repeat"), [(45, 3, 0.0), (45, 3, 0.9), (50, 3, 0.5), (40, 3, 0.9)]
)
def test_rate_interval_covers_at_swe_bench_rates(issues: int, reps: int, repeat: float) -> None:
    """~5% (issue difficulty Beta(0.25, 4.75)), replicates correlated: coverage ≥ 93% over 2,000 runs (Wilson
    covered 80%)."""
    cover, printed = clustered_rate_coverage(
        np.random.default_rng(issues + reps), 0.25, 4.75, issues, reps, repeat, 2000
    )
    assert cover >= 0.93, cover
    assert min(hi - lo for lo, hi in printed) > 0.0


@pytest.mark.parametrize("value", [False, True])
def test_rate_interval_at_zero_and_hundred_percent_is_not_degenerate(value: bool) -> None:
    groups = [{"condition": "a"}]
    clustered_intervals(cells_of(np.full((1, 3, 40), value)), groups, set(), matched=True)
    lo, hi = groups[0]["ci95_clustered"]
    assert lo <= float(value) <= hi and hi - lo > 0.02
    # 0% vs 100%: the difference's interval is not [100%, 100%] and p is tiny but not 0.
    y = np.stack([np.full((3, 40), value), np.full((3, 40), not value)])
    (c,) = comparisons(cells_of(y), ["a", "b"], set(), matched=True)
    assert c["paired_ci95"][1] - c["paired_ci95"][0] > 0.01
    assert 0 < c["p_paired"] < 1e-4 and p_value(c["p_paired"]) == "< 0.0001"
    assert c["mdd80"] is not None and c["mdd80"] > 0


def test_printed_p_values() -> None:
    assert p_value(1.9e-6) == "< 0.0001" and p_value(0.0) == "< 0.0001"
    assert p_value(0.04567) == "0.0457" and p_value(1.0) == "1.0000"


def test_nothing_detectable_is_a_dash() -> None:
    rng = np.random.default_rng(1)
    (c,) = comparisons(cells_of(rng.random((2, 1, 3)) < 0.5), ["a", "b"], set(), matched=True)
    assert c["mdd80"] is None  # three issues: t(2) puts any possible difference out of reach
    assert paired.detectable(float("nan"), 0, 1) is None


def power_at_printed_detectable(
    issues: int, reps: int, repeat: float, conds: int, sims: int, seed: int
) -> tuple[float, float]:
    """The detectable difference printed for a null run of the design, then the share of ``sims`` runs with
    that true difference (condition a better, the others equal) whose printed Holm p is below 0.05."""
    rng = np.random.default_rng(seed)
    names = [f"c{k}" for k in range(conds)]

    def draw(delta: float) -> np.ndarray:
        p = rng.beta(2, 2, issues)
        shifts = np.array([delta / 2] + [-delta / 2] * (conds - 1))[:, None, None]
        q = np.clip(p + shifts, 0, 1)
        first, fresh = rng.random((conds, 1, issues)) < q, rng.random((conds, reps, issues)) < q
        return np.where(rng.random((conds, reps, issues)) < repeat, first, fresh)

    printed = [
        comparisons(cells_of(draw(0.0), tuple(names)), names, set(), matched=True)[0]["mdd80"]
        for _ in range(200)
    ]
    mdd = float(np.median([math.inf if m is None else m for m in printed]))  # "—": none reachable
    hits = sum(
        comparisons(cells_of(draw(mdd), tuple(names)), names, set(), matched=True)[0]["p_holm"] < 0.05
        for _ in range(sims)
    )
    return mdd, hits / sims


@pytest.mark.parametrize(
    ("issues", "reps", "repeat", "conds"),
    [(40, 3, 0.5, 2), (40, 3, 0.5, 3), (100, 3, 0.9, 2), (20, 2, 0.3, 2)],
)
def test_printed_detectable_difference_has_eighty_percent_power(
    issues: int, reps: int, repeat: float, conds: int
) -> None:
    """75–85% power at the printed "detectable" difference with the printed test and Holm (1,000 runs: the
    binomial sd of the power is 1.3 points)."""
    mdd, power = power_at_printed_detectable(issues, reps, repeat, conds, 1000, seed=issues * 10 + conds)
    assert 0.75 <= power <= 0.85, (mdd, power)


def test_printed_detectable_difference_is_reachable_with_ten_issues() -> None:
    """At 10 issues × 1 replicate the printed difference (~65 points) is reached with at least 80% power (the
    sign-flip test's printed 45 points had 26–28%); it errs conservative, since a difference that large
    shrinks the variance of the paired differences the standard error was estimated at."""
    mdd, power = power_at_printed_detectable(10, 1, 0.0, 2, 1000, seed=102)
    assert 0.80 <= power <= 0.92, (mdd, power)


def test_comparisons_use_the_rates_matched_set() -> None:
    """A difference is the gap between the rates printed: both are over the cells every condition judged."""
    rng = np.random.default_rng(8)
    y = rng.random((3, 2, 30)) < 0.5
    cells = cells_of(y, ("a", "b", "c"))
    judged = cells.judged.copy()
    judged[:12, 2] = False  # condition c has not reached twelve cells: a vs b must not use them either
    cells = cells._replace(judged=judged, success=cells.success & judged)
    groups = [{"condition": c} for c in ("a", "b", "c")]
    comps = comparisons(cells, ["a", "b", "c"], set(), matched=True)
    keep = judged.all(axis=1)
    rates = cells.success[keep].mean(axis=0)
    assert comps[0]["paired_diff"] == pytest.approx(rates[0] - rates[1])
    assert comps[0]["pairs"] == int(keep.sum()) == 48
    unmatched = comparisons(cells, ["a", "b", "c"], set(), matched=False)
    assert unmatched[0]["pairs"] == 60 and unmatched[1]["pairs"] == 48
    clustered_intervals(cells, groups, set(), matched=True)
    assert all(g["issues"] == 30 for g in groups)


def test_two_way_variance_by_hand() -> None:
    """V_issue + V_replicate − V_cell on a 2 × 2 design, each with its G/(G−1)."""
    d = np.array([1.0, 0.0, 0.0, -1.0])  # cells (r0,i0), (r0,i1), (r1,i0), (r1,i1)
    issue, rep = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    e = d - d.mean()
    v_issue = 2 * ((e[0] + e[2]) ** 2 + (e[1] + e[3]) ** 2) / 16
    v_rep = 2 * ((e[0] + e[1]) ** 2 + (e[2] + e[3]) ** 2) / 16
    v_cell = 4 / 3 * float(e @ e) / 16
    var, df = paired.cluster_variance(e, issue, rep, two_way=True)
    assert df == 1
    assert var == pytest.approx(
        v_issue + v_rep - v_cell if v_issue + v_rep - v_cell > 0 else max(v_issue, v_rep)
    )
    one, df1 = paired.cluster_variance(e, issue, rep, two_way=False)
    assert (one, df1) == (pytest.approx(v_issue), 1)


def test_one_way_interval_is_cr1_with_t() -> None:
    """The issue-clustered SE of a mean is the CR1 sandwich of OLS on a constant (statsmodels'
    ``cov_type="cluster"`` with its corrections), written out here; p and the interval are t(G − 1)."""
    rng = np.random.default_rng(4)
    d = rng.integers(-1, 2, 60).astype(float)
    issue = np.repeat(np.arange(20), 3)
    c = paired.compare(d, issue, np.tile(np.arange(3), 20), two_way=False)
    e = d - d.mean()
    meat = sum(float(e[issue == g].sum()) ** 2 for g in range(20))
    se = math.sqrt(20 / 19 * (59 / 59) * meat) / 60
    assert c.se == pytest.approx(se, rel=1e-12) and c.df == 19
    assert c.p == pytest.approx(2 * sps.t.sf(abs(d.mean()) / se, 19), rel=1e-10)
    half = sps.t.ppf(0.975, 19) * se
    assert c.ci95 == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-10)


def test_holm() -> None:
    assert paired.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# --- The sign-flip null (``p_sign_flip``, conditional on the swarms): exact, normal, Monte Carlo -----------


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


def test_task_type_comparisons_control_the_family() -> None:
    """Null, 4 task types × 3 conditions: Holm across the 12 type × pair tests keeps the family-wise error
    at or under 5% over 500 runs (each type alone at 5% would give about 30%), and each row is its type's."""
    from swarmq.report.results import task_type_comparisons

    rng = np.random.default_rng(12)
    names = ["a", "b", "c"]
    any_raw, any_holm, sims = 0, 0, 500
    for _ in range(sims):
        y = rng.random((3, 2, 80)) < rng.uniform(0, 1, 80)
        cells = cells_of(y, tuple(names))
        cells = cells._replace(task_type=[f"t{i % 4}" for i in cells.issue.tolist()])
        comps = task_type_comparisons(cells, names, set(), matched=True)
        assert len(comps) == 12 and {c["task_type"] for c in comps} == {"t0", "t1", "t2", "t3"}
        assert all(c["pairs"] == 40 for c in comps)  # 20 issues of the type × 2 replicates
        any_raw += any(c["p_paired"] < 0.05 for c in comps)
        any_holm += any(c["p_holm"] < 0.05 for c in comps)
    assert any_holm / sims <= 0.06, any_holm / sims
    assert any_raw / sims > 0.15


def test_detectable_is_defined_for_every_small_df_and_holm_family() -> None:
    """scipy's noncentral t returns NaN for the wrong tail at some λ > 5 when df is small; the root search
    must still answer (a task-type table asks for df 1–3 with families of a dozen tests)."""
    for df, family in itertools.product(range(1, 41), range(1, 61)):
        lam = paired.noncentrality(df, paired.ALPHA / family, paired.POWER)
        crit = sps.t.ppf(1 - paired.ALPHA / family / 2, df)
        assert math.isfinite(lam) and lam > crit, (df, family, lam)
        got = sps.nct.sf(crit, df, lam) + np.nan_to_num(sps.nct.cdf(-crit, df, lam))
        assert got == pytest.approx(paired.POWER, abs=1e-6), (df, family)
