"""Plots of an experiment's outcomes: success rate with the table's main 95% interval (issue-clustered),
learning curves, routing heatmaps.

The numbers come from the same queries as `results.py`; turning them into curves and shares are pure functions
here. matplotlib is optional (``pip install 'swarmq[plots]'``) and imported only when plotting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from swarmq.errors import OutputError, SwarmqError
from swarmq.files import write_atomic
from swarmq.report.queries import curve_rows, group_rows
from swarmq.store.experiments import experiment_row

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 120


def learning_curve(streams: Sequence[Sequence[bool]]) -> list[float]:
    """Cumulative success rate after the k-th job (k = 1, 2, ...), averaged over the streams (replicates)
    that reached k jobs; a stream with fewer jobs drops out instead of dragging the mean."""
    longest = max((len(s) for s in streams), default=0)
    sums, counts = [0.0] * longest, [0] * longest
    for stream in streams:
        hits = 0
        for k, success in enumerate(stream):
            hits += bool(success)
            sums[k] += hits / (k + 1)
            counts[k] += 1
    return [s / c for s, c in zip(sums, counts, strict=True)]


def routing_shares(
    counts: Mapping[tuple[int, str], int], agents: Sequence[int], task_types: Sequence[str]
) -> list[list[float]]:
    """``shares[a][t]``: the share of task type t's jobs routed to agent a (each column sums to 1, or is all
    0 without jobs). Normalising per type makes specialization visible however common each type is."""
    totals = {t: sum(counts.get((a, t), 0) for a in agents) for t in task_types}
    return [[counts.get((a, t), 0) / totals[t] if totals[t] else 0.0 for t in task_types] for a in agents]


def plot(session: Session, experiment: str, out_dir: Path) -> list[Path]:
    """Write the three PNGs for ``experiment`` into ``out_dir``; returns their paths."""
    figure_cls = _matplotlib()
    exp_id, config = experiment_row(session, experiment)
    groups = group_rows(session, exp_id, "condition", config)
    rows = curve_rows(session, exp_id)
    if not rows:
        raise SwarmqError(f"experiment {experiment!r} has no outcomes yet; nothing to plot")
    agents_per_condition = {name: int(c.get("agents", 1)) for name, c in config.get("conditions", {}).items()}
    _make_folder(out_dir)
    figures = {
        "success_rate": _success_figure(figure_cls, experiment, groups),
        "learning_curves": _learning_figure(figure_cls, experiment, rows),
        "routing": _routing_figure(
            figure_cls, experiment, rows, agents_per_condition, int(config.get("replicates", 1))
        ),
    }
    paths = []
    for name, fig in figures.items():
        path = out_dir / f"{experiment}_{name}.png"
        write_atomic(path, partial(_save_png, fig), "-o")
        paths.append(path)
    return paths


def _save_png(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI, format="png")


def _make_folder(out_dir: Path) -> None:
    """The output folder, created if missing (with its parents); anything else there is one line."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"-o: {out_dir} is not a folder (plot writes one PNG per figure into it)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"-o: cannot create the folder {out_dir}: {exc.strerror or exc}") from None


def _matplotlib() -> type[Figure]:
    try:
        import matplotlib
    except ImportError:
        raise SwarmqError("plots need matplotlib: pip install 'swarmq[plots]'") from None
    matplotlib.use("Agg")  # files only; never open a window or need a display
    # Figure objects, not pyplot: no global figure registry to leak in a long-lived process.
    from matplotlib.figure import Figure

    return Figure


LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "x")


def _integer_ticks() -> Any:
    """Positions are whole jobs: no 2.5 on the axis."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _success_figure(figure_cls: type[Figure], experiment: str, groups: list[dict[str, Any]]) -> Figure:
    fig = figure_cls(figsize=(max(5.5, 1.4 * len(groups) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    names = [str(g["condition"]) for g in groups]
    rates = [g["success_rate"] if g["success_rate"] is not None else 0.0 for g in groups]
    cis = [_interval(g) for g in groups]
    lows = [r - ci[0] for r, ci in zip(rates, cis, strict=True)]
    highs = [ci[1] - r for r, ci in zip(rates, cis, strict=True)]
    xs = list(range(len(names)))
    ax.bar(xs, rates, yerr=[lows, highs], capsize=6, color="tab:blue", alpha=0.8)
    for x, g, ci in zip(xs, groups, cis, strict=True):
        ax.annotate(
            f"{g['successes']}/{g['judged']}",
            (x, ci[1]),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=9,
        )
    ax.set_xticks(xs, names)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("success rate")
    clustered = all("ci95_clustered" in g for g in groups)
    label = "95% issue-clustered interval" if clustered else "95% Wilson interval, outcomes independent"
    ax.set_title(f"{experiment}\nsuccess rate by condition ({label})", fontsize=10)
    return fig


def _interval(group: dict[str, Any]) -> list[float]:
    """The table's main interval of a rate: issue-clustered where `results` gives one, else Wilson."""
    return list(group.get("ci95_clustered", group["ci95"]))


def _learning_figure(figure_cls: type[Figure], experiment: str, rows: list[dict[str, Any]]) -> Figure:
    streams: dict[str, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:  # rows come ordered by position inside each stream; unjudged outcomes are no evidence
        if r["judged"]:
            streams[r["condition"]][r["replicate"]].append(bool(r["success"]))
    fig = figure_cls(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    for k, (cond, reps) in enumerate(sorted(streams.items())):
        curve = learning_curve(list(reps.values()))
        # Curves often coincide (same issues, same seeds): line style and marker tell them apart.
        ax.plot(
            range(1, len(curve) + 1),
            curve,
            linestyle=LINE_STYLES[k % len(LINE_STYLES)],
            marker=MARKERS[k % len(MARKERS)],
            markevery=max(1, len(curve) // 12),
            markersize=4,
            alpha=0.85,
            label=f"{cond} ({len(reps)} replicate{'s' if len(reps) != 1 else ''})",
        )
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("jobs done in the stream (by position)")
    ax.set_ylabel("cumulative success rate")
    ax.set_title(f"{experiment}: learning curves (mean over replicates)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def _routing_figure(
    figure_cls: type[Figure],
    experiment: str,
    rows: list[dict[str, Any]],
    agents_per_condition: dict[str, int],
    replicates: int,
) -> Figure:
    """One row per (replicate, agent): agent 0 of replicate 0 and of replicate 1 are different agents
    (independent swarms), as in S and F; pooling them would show specialization that no agent has."""
    counts: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        if r["agent_id"] is None:  # a failure outcome: never routed to an agent
            continue
        per = agents_per_condition.get(r["condition"], 1)
        counts[r["condition"]][(int(r["replicate"]) * per + int(r["agent_id"]), str(r["task_type"]))] += 1
    task_types = sorted({str(r["task_type"]) for r in rows})
    conditions = sorted(counts)
    tallest = max(replicates * agents_per_condition.get(c, 1) for c in conditions)
    fig = figure_cls(
        figsize=(max(5.0, 3.6 * len(conditions)), max(4.0, 0.45 * tallest + 1.5)), layout="constrained"
    )
    axes = fig.subplots(1, len(conditions), squeeze=False)[0]
    image = None
    for ax, cond in zip(axes, conditions, strict=True):
        per = agents_per_condition.get(cond, 1)
        keys = list(range(replicates * per))
        shares = routing_shares(counts[cond], keys, task_types)
        image = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for k in keys:
            for t, ttype in enumerate(task_types):
                share = shares[k][t]
                ax.text(
                    t,
                    k,
                    f"{share:.2f}\n({counts[cond].get((k, ttype), 0)})",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share < 0.6 else "black",
                )
        ax.set_xticks(range(len(task_types)), task_types, rotation=30, ha="right")
        ax.set_yticks(range(len(keys)), [f"r{k // per} agent {k % per}" for k in keys])
        ax.set_title(cond)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="share of the task type's jobs")
    fig.suptitle(f"{experiment}: routing ((replicate, agent) × task type)")
    return fig
