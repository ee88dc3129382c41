"""Results from the aggregates (`store.aggregates`, `store.histograms`): group rows of nested groupings from
the summed cell counters, a column at a time, and the Wilson intervals of their rates (`report.queries` reads
through here unless it recounts)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from swarmq.store import aggregates, histograms

if TYPE_CHECKING:  # numpy is imported where it is used: `swarmq status` reads through here without it
    import numpy as np


def with_rates(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group's rate and its Wilson interval (`rates`)."""
    lo, hi = rates([int(g["successes"]) for g in groups], [int(g["judged"]) for g in groups])
    for g, low, high in zip(groups, lo.tolist(), hi.tolist(), strict=True):
        g["success_rate"] = g["successes"] / g["judged"] if g["judged"] else None
        g["ci95"] = [low, high]
    return groups


def rates(
    successes: Sequence[int] | np.ndarray, judged: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson intervals of the rates, in one pass over thousands of groups. Every job with a judged
    outcome
    counts, failures included (a prompt longer than n_ctx, a job that failed as a whole): leaving them out
    would
    flatter the conditions whose prompts grow. Outcomes the scorer could not judge do not (stated in
    scoring_errors), nor, by default, those outside the matched set."""
    import numpy as np

    from swarmq.report import stats  # scipy: only the commands that compute rates pay for it (not `status`)

    return stats.wilson_intervals(np.asarray(successes, dtype=np.int64), np.asarray(judged, dtype=np.int64))


def aggregated_levels(
    session: Session,
    experiment_id: int,
    levels: Sequence[str],
    *,
    matched: bool,
    p95: Collection[str],
    brief: Collection[str],
) -> dict[str, list[dict[str, Any]]]:
    """`group_rows` of nested groupings from the aggregates: the cells and the histogram each summed by SQL to
    the
    finest grouping and from there to each coarser one in turn (`aggregates.sum_cells`,
    `aggregates.sum_histograms`), running jobs read live."""
    columns = aggregates.GROUP_COLUMNS
    order = sorted(
        levels, key=lambda by: -len(columns[by])
    )  # finest first: each is summed from the one before
    cells = aggregates.cell_sums(session, experiment_id, order[0])
    running = aggregates.running(session, experiment_id, order[0])
    timed = [by for by in order if by in p95]
    hist = histograms.histograms(session, experiment_id, timed[0]) if timed else None
    out = {}
    for by in order:
        width = len(columns[by])
        cells = aggregates.sum_cells(cells, width) if width < len(cells.columns) else cells
        times = {}
        if hist is not None and by in timed:
            hist = histograms.sum_histograms(hist, width)
            times = histograms.quantiles(hist, 0.95)
        out[by] = _groups(
            cells, aggregates.sum_counts(running, width), times, matched=matched, brief=by in brief
        )
    return {by: out[by] for by in levels}


def _groups(
    cells: aggregates.CellSums,
    running: dict[tuple[Any, ...], int],
    times: dict[tuple[Any, ...], float | None],
    *,
    matched: bool,
    brief: bool = False,
) -> list[dict[str, Any]]:
    """Group rows from summed cell counters, a column at a time (thousands of agents); ``brief``: only the
    key,
    judged, successes and the rate. Means and token rates divide the exact sums converted to float (within an
    ulp of dividing the decimals; the recount divides float sums). An agent group -1 (jobs not yet routed,
    failure outcomes) has no agent and no row."""
    import numpy as np

    n = {name: cells.count(name) for name in aggregates.INT_COUNTERS}
    judged = n["matched"] if matched else n["judged"]
    successes = n["matched_successes"] if matched else n["successes"]
    rate = _ratio(successes, judged, judged > 0)
    if brief:
        columns: dict[str, Any] = {"judged": judged, "successes": successes, "success_rate": rate}
    else:
        seconds = np.array([float(x) for x in cells.sums["seconds_sum"]])
        generation = np.array([float(x) for x in cells.sums["generation_sum"]])
        lo, hi = rates(successes, judged)
        columns = {
            "jobs": n["jobs"],
            "done": n["done"],
            "failed": n["failed"],
            "running": [running.get(k, 0) for k in cells.keys],
            "outcomes": n["outcomes"],
            "scoring_errors": n["scoring_errors"],
            "judged": judged,
            "outside": n["judged"] - judged if matched else 0 * judged,
            "successes": successes,
            "resolved": n["resolved"],
            "imported": n["imported"],
            "mean_seconds": _ratio(seconds, n["seconds_n"], n["seconds_n"] > 0),
            "p95_seconds": [times.get(k) for k in cells.keys],
            "tokens_per_second": _ratio(
                n["tokens_sum"], generation, (n["generation_n"] > 0) & (generation != 0)
            ),
            "share_max_tokens": _ratio(n["length_n"], n["finish_n"], n["finish_n"] > 0),
            "share_errors": _ratio(n["errors_n"], n["outcomes"], n["outcomes"] > 0),
            "success_rate": rate,
            "ci95": [[a, b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)],
        }
    names = (*cells.columns, *columns)
    values = [c.tolist() if isinstance(c, np.ndarray) else c for c in columns.values()]
    rows = [
        dict(zip(names, r, strict=True)) for r in zip(*zip(*cells.keys, strict=True), *values, strict=True)
    ]
    return [g for g in rows if g["agent"] >= 0] if cells.columns[-1] == "agent" else rows


def _ratio(a: np.ndarray, b: np.ndarray, defined: np.ndarray) -> list[float | None]:
    """a / b where ``defined``, None elsewhere (as floats: an int ratio rounds as Python's ``/`` does)."""
    import numpy as np

    out = np.divide(a, b, out=np.zeros(len(defined)), where=defined)
    return [x if ok else None for x, ok in zip(out.tolist(), defined.tolist(), strict=True)]
