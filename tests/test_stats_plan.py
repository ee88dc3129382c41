"""`swarmq plan`: its standard error and detectable difference against simulations through the table's test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, logit
from typer.testing import CliRunner

from swarmq.report import design
from swarmq.report.results import comparisons
from tests.test_paired import cells_of


def simulate(
    rng: np.random.Generator, issues: int, reps: int, rate: float, icc: float, sd: float, delta: float
) -> np.ndarray:
    """The plan's model: Beta issue difficulty with intra-issue correlation ``icc`` (a + b = 1/icc − 1), a
    logit swarm effect per (condition, replicate), condition a ``delta`` better on the rate scale."""
    ab = 1 / icc - 1
    p = rng.beta(rate * ab, (1 - rate) * ab, issues)
    base = logit(np.clip(p, 1e-6, 1 - 1e-6)) + rng.normal(0, sd, (2, reps, 1))
    q = np.clip(expit(base) + np.array([delta / 2, -delta / 2])[:, None, None], 0, 1)
    return rng.random((2, reps, issues)) < q


@pytest.mark.parametrize(("issues", "reps"), [(40, 10), (50, 3)])
def test_planned_standard_error_matches_the_table(issues: int, reps: int) -> None:
    rng = np.random.default_rng(issues + reps)
    d = design.Design(issues, reps, 2, 2)
    planned = design.plan(d, 0.3, 0.3, 0.5)
    ses = [
        comparisons(
            cells_of(simulate(rng, issues, reps, 0.3, 0.3, 0.5, 0.0)), ["a", "b"], {"a", "b"}, matched=True
        )[0]["paired_se"]
        for _ in range(400)
    ]
    assert planned.two_way == (reps >= 5)
    assert planned.se == pytest.approx(float(np.sqrt(np.mean(np.square(ses)))), rel=0.15)


def test_planned_detectable_has_about_eighty_percent_power() -> None:
    """40 issues × 10 replicates, both conditions accumulate: power at the planned difference 70–90% (500
    runs; the plan's model is the rate-scale approximation of the logit one simulated)."""
    rng = np.random.default_rng(11)
    p = design.plan(design.Design(40, 10, 2, 2), 0.3, 0.3, 0.5)
    assert p.detectable is not None
    hits = sum(
        comparisons(
            cells_of(simulate(rng, 40, 10, 0.3, 0.3, 0.5, p.detectable)), ["a", "b"], {"a", "b"}, matched=True
        )[0]["p_holm"]
        < 0.05
        for _ in range(500)
    )
    assert 0.70 <= hits / 500 <= 0.90, (p.detectable, hits / 500)


def test_replicates_needed_and_warning() -> None:
    d = design.Design(50, 3, 3, 2)
    need = design.replicates_needed(d, 0.3, 0.3, 0.5, 0.15)
    assert need is not None and need >= 5
    p = design.plan(design.Design(50, need, 3, 2), 0.3, 0.3, 0.5)
    assert p.detectable is not None and p.detectable <= 0.15
    assert design.plan(design.Design(50, need - 1, 3, 2), 0.3, 0.3, 0.5).detectable > 0.15 or need == 5
    assert design.replicates_warning(
        3, ["swarm"]
    ) is not None and "conditional on these swarms" in design.replicates_warning(3, ["swarm"])
    assert design.replicates_warning(5, ["swarm"]) is None and design.replicates_warning(3, []) is None


def test_plan_command(tmp_path: Path) -> None:
    from swarmq.cli.app import app

    result = CliRunner().invoke(app, ["plan", "config/exp3.yaml", "--issues", "50", "--rate", "0.3"])
    assert result.exit_code == 0, result.output
    # The shipped study runs 5 swarms: two-way clusters, no warning.
    assert "detectable" in result.output and "issue × replicate clusters" in result.output
    assert "conditional on these swarms" not in result.output
    three = tmp_path / "exp3.yaml"
    three.write_text(Path("config/exp3.yaml").read_text().replace("\nreplicates: 5\n", "\nreplicates: 3\n"))
    result = CliRunner().invoke(app, ["plan", str(three), "--issues", "50", "--rate", "0.3"])
    assert result.exit_code == 0, result.output
    assert "conditional on these swarms" in result.output
