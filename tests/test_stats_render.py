"""The results table for people: fits the terminal, never cuts a name, prints p-values and labels honestly."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from swarmq.report.render import print_table


def group(key: dict[str, Any], rate: float, **extra: Any) -> dict[str, Any]:
    return {
        **key,
        "jobs": 150,
        "done": 148,
        "failed": 2,
        "running": 0,
        "outcomes": 150,
        "scoring_errors": 1,
        "judged": 147,
        "successes": round(147 * rate),
        "success_rate": rate,
        "ci95": [rate - 0.05, rate + 0.05],
        "outside": 2,
        "resolved": 0,
        "imported": 0,
        "mean_seconds": 12.5,
        "p95_seconds": 30.25,
        "tokens_per_second": 41.3,
        "share_max_tokens": 0.02,
        "share_errors": 0.01,
        **extra,
    }


def data(**over: Any) -> dict[str, Any]:
    names = ["baseline", "swarm_accumulate", "swarm_no_accumulate"]
    groups = [
        group({"condition": c}, r, ci95_clustered=[r - 0.08, r + 0.08], issues=50)
        for c, r in zip(names, (0.2, 0.3, 0.25), strict=True)
    ]
    comps = [
        {
            "a": a,
            "b": b,
            "pairs": 147,
            "issues": 50,
            "replicates": 3,
            "paired_diff": -0.1,
            "paired_ci95": [-0.2, 0.0],
            "p_paired": 1.9e-6,
            "p_holm": 5.7e-6,
            "mdd80": None if a == "baseline" else 0.12,
            "two_way": False,
            "conditional": True,
            "p_fisher": 0.04,
            "diff": -0.1,
            "diff_ci95": [-0.2, 0.0],
        }
        for a, b in (
            ("baseline", "swarm_accumulate"),
            ("baseline", "swarm_no_accumulate"),
            ("swarm_accumulate", "swarm_no_accumulate"),
        )
    ]
    spec = {
        c: {
            "S": 0.1,
            "S_p": 0.2,
            "S_random": 0.09,
            "F_cramers_v": None,
            "F_p": None,
            "F_random": None,
            "per_replicate": {
                0: {"S": 0.1, "S_p": 0.3, "S_random": 0.09, "F_cramers_v": 0.2, "F_p": 0.5, "F_random": 0.21},
                1: {"S": 0.1, "S_p": 0.3, "S_random": 0.09, "F_cramers_v": 0.2, "F_p": 0.5, "F_random": 0.21},
            },
        }
        for c in names[1:]
    }
    out = {
        "experiment": "exp3",
        "by": "condition",
        "success_rule": "applies",
        "matched": True,
        "interim": False,
        "replicates_run": 3,
        "groups": groups,
        "comparisons": comps,
        "conclusion": ["baseline < swarm_accumulate"],
        "scoring_sensitivity": {"as_failures": [], "as_successes": ["baseline < swarm_accumulate"]},
        "specialization": spec,
    }
    return {**out, **over}


def render(d: dict[str, Any], width: int) -> str:
    buf = io.StringIO()
    print_table(d, Console(file=buf, width=width, color_system=None, legacy_windows=False))
    return buf.getvalue()


@pytest.mark.parametrize("width", [80, 100, 200])
def test_fits_the_width_and_keeps_whole_names(width: int) -> None:
    text = render(data(), width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    for name in ("baseline", "swarm_accumulate", "swarm_no_accumulate"):
        assert name in text
    assert "left out at this width" in text if width == 80 else True


def test_wide_terminal_shows_every_column() -> None:
    text = render(data(), 250)
    assert "Wilson (indep.)" in text and "p Fisher (indep.)" in text and "gen tok/s" in text


def test_p_values_dashes_labels_and_sensitivity() -> None:
    text = render(data(), 120)
    assert "0.0000" not in text and "< 0.0001" in text
    assert "—" in text  # nothing detectable for two of the pairs
    assert "conditional on these swarms" in text
    assert (
        "if every scoring error were a failure: no difference; a success: baseline < swarm_accumulate" in text
    )
    assert "interim" not in text
    assert "interim: not a final test" in render(data(interim=True), 120)


def test_all_outcomes_title_says_unmatched() -> None:
    text = render(data(matched=False), 120)
    assert "all outcomes, unmatched" in text and "matched set" not in text


def test_by_model_shows_whole_names() -> None:
    models = ["qwen2.5-coder-7b-instruct-q4_k_m", "deepseek-coder-6.7b-instruct-q4_k_m"]
    d = data(by="model", groups=[group({"model": m}, 0.3) for m in models], comparisons=[], specialization={})
    text = render(d, 80)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for m in models:
        assert m in text
    assert "rate [Wilson, indep.]" in text


def test_task_type_comparisons_table() -> None:
    comps = [{**c, "task_type": t} for t in ("string_manipulation", "math") for c in data()["comparisons"]]
    text = render(data(by="task_type", task_type_comparisons=comps), 80)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "Holm across all 6 type × pair" in text and "string_manipulation" in text


def test_no_cell_is_folded_when_its_column_is_kept() -> None:
    """The width estimate matches rich's layout: every kept interval prints on one line."""
    text = render(data(), 80)
    assert all(line.count("[") == line.count("]") for line in text.splitlines() if "%" in line), text
