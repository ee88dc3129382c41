"""Plots: the pure curve/share functions, and real PNGs from a real run with the stand-in generator."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from swarmq.errors import SwarmqError, UnknownExperiment
from swarmq.report.plots import DPI, learning_curve, plot, routing_shares
from tests.conftest import swarmq
from tests.helpers import write_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_learning_curve_averages_over_replicates() -> None:
    # replicate A: 1, 0, 1 → 1, 1/2, 2/3; replicate B: 0, 0 → 0, 0; position 3 only has A.
    curve = learning_curve([[True, False, True], [False, False]])
    assert curve == pytest.approx([0.5, 0.25, 2 / 3])
    assert learning_curve([]) == []


def test_routing_shares_normalise_per_task_type() -> None:
    counts = {(0, "math"): 3, (1, "math"): 1, (1, "string"): 2}
    shares = routing_shares(counts, [0, 1, 2], ["math", "string", "list"])
    assert shares == [[0.75, 0.0, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(SwarmqError, match=r"pip install 'swarmq\[plots\]'"):
        plot(None, "any", Path("unused"))  # type: ignore[arg-type]


@pytest.mark.services
def test_plots_from_a_real_run(tmp_path: Path, services_env: dict[str, str], svc: Any) -> None:
    conditions = {"baseline": {}, "swarm": {"agents": 3, "router": "random", "accumulate": True}}
    cfg = write_config(tmp_path, name="plt", limit=8, replicates=2, conditions=conditions)
    r = swarmq("enqueue", str(cfg), env=services_env)
    assert r.returncode == 0, r.stderr
    w = swarmq(
        "worker",
        "--cpu",
        "--burst",
        "--generator",
        "tests.fakes:hash_generator",
        "--model",
        "models/stand-in.gguf",
        env=services_env,
        timeout=300,
    )
    assert w.returncode == 0, w.stderr[-3000:]

    out = tmp_path / "plots"
    with svc.sessions() as session:
        paths = plot(session, "plt", out)
    assert [p.name for p in paths] == ["plt_success_rate.png", "plt_learning_curves.png", "plt_routing.png"]
    for p in paths:
        assert p.parent == out and p.exists()
        assert p.stat().st_size > 5_000, f"{p.name} is suspiciously small"
        width, height = png_size(p)
        assert width >= 4 * DPI and height >= 4 * DPI
    # The routing figure has one panel per condition: wider than one 3.6-inch panel.
    assert png_size(paths[2])[0] >= int(2 * 3.6 * DPI) - 1


@pytest.mark.services
def test_plot_unknown_experiment(tmp_path: Path, svc: Any) -> None:
    with svc.sessions() as session, pytest.raises(UnknownExperiment, match="unknown experiment 'nope'"):
        plot(session, "nope", tmp_path)
    assert not tmp_path.joinpath("nope_success_rate.png").exists()


@pytest.mark.services
def test_plot_without_outcomes(tmp_path: Path, services_env: dict[str, str], svc: Any) -> None:
    cfg = write_config(tmp_path, name="empty", limit=1)
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    with svc.sessions() as session, pytest.raises(SwarmqError, match="has no outcomes yet"):
        plot(session, "empty", tmp_path / "p")


def test_the_success_bars_carry_the_tables_clustered_interval() -> None:
    from matplotlib.figure import Figure

    from swarmq.report.plots import _success_figure

    group = {"condition": "a", "success_rate": 0.5, "successes": 5, "judged": 10, "ci95": [0.3, 0.7]}
    clustered = _success_figure(Figure, "e", [{**group, "ci95_clustered": [0.1, 0.9]}])
    (errorbar,) = [c for c in clustered.axes[0].containers if hasattr(c, "lines")]
    (segments,) = errorbar.lines[2]
    assert list(segments.get_segments()[0][:, 1]) == pytest.approx([0.1, 0.9])
    assert "issue-clustered" in clustered.axes[0].get_title()
    wilson = _success_figure(Figure, "e", [group])
    assert "Wilson interval, outcomes independent" in wilson.axes[0].get_title()
