"""The results aggregates: counters kept by the server-side SQL of ``store/sql`` (``swarmq_agg_outcomes``
says what each table counts; `store.counters` defines each counter): triggers on ``jobs`` and on counted
outcomes, and `fold`, which counts new outcomes in batches after their commit. Read here in place of a scan of
every outcome, recounted by `rebuild`; the histograms are `store.histograms`'.

Exactness: once folded (a report folds before it reads: `report.queries.group_levels`), every count equals the
GROUP BY of `report.queries` over the same rows (tests/test_aggregates.py checks it on random data, and after
kill -9s of real workers); means and token rates equal it up to float rounding (sums are kept as ``numeric``
of each value rounded to 15 digits).

Each table is read once per report, summed by SQL to the finest grouping asked (`cell_sums`); coarser
groupings are summed from those groups here (`sum_cells`: integer and numeric sums, exact). numpy is imported
by the functions that use it: `swarmq status` reads through `report.queries` and starts without it.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from swarmq.store import counters

if TYPE_CHECKING:
    import numpy as np

GROUP_COLUMNS = {
    "condition": ("condition",),
    "replicate": ("condition", "replicate"),
    "task_type": ("condition", "task_type"),
    "agent": ("condition", "replicate", "agent"),
}
"""The groupings the aggregates serve (the keys of `report.queries.GROUPINGS` they can answer)."""
_NUMERIC = counters.NUMERIC_COUNTERS
INT_COUNTERS = counters.INT_COUNTERS


@dataclass(frozen=True)
class CellSums:
    """Summed cell counters of many groups, as columns (``agent`` -1: jobs without an outcome, and failure
    outcomes)."""

    columns: tuple[str, ...]
    """The grouping's key columns (`GROUP_COLUMNS`)."""
    keys: list[tuple[Any, ...]]
    """One key per group, in the key's order."""
    counts: np.ndarray
    """int64, a row per group and a column per `INT_COUNTERS` entry."""
    sums: dict[str, list[Decimal]]
    """The numeric counters (seconds and generation time), exact, a value per group."""

    def count(self, name: str) -> np.ndarray:
        return self.counts[:, INT_COUNTERS.index(name)]


def cell_sums(session: Session, experiment_id: int, by: str) -> CellSums:
    """Summed cell counters per group of ``by``. A cell's counters fit an int (they count one stream's jobs):
    summing them as int is int8 arithmetic, not numeric."""
    import numpy as np

    cols = GROUP_COLUMNS[by]
    sums = ", ".join([*(f"sum({c}::int)" for c in INT_COUNTERS), *(f"sum({c})" for c in _NUMERIC)])
    key = ", ".join(cols)
    rows = session.execute(
        text(f"SELECT {key}, {sums} FROM agg_cells WHERE experiment_id = :e GROUP BY {key} ORDER BY {key}"),
        {"e": experiment_id},
    ).all()
    width, ints = len(cols), len(INT_COUNTERS)
    values = list(zip(*rows, strict=True)) or [()] * (width + ints + len(_NUMERIC))  # a column at a time
    counts = np.array(values[width : width + ints], dtype=np.int64).reshape(ints, len(rows)).T
    numeric = {c: list(values[width + ints + i]) for i, c in enumerate(_NUMERIC)}
    return CellSums(cols, list(zip(*values[:width], strict=True)), counts, numeric)


def sum_cells(cells: CellSums, width: int) -> CellSums:
    """``cells`` summed to the groups of their first ``width`` key columns (conditions of (condition,
    replicate)), in the order each first appears (groups in a longer key's order stay in its order, whatever
    the collation). Integer counters in int64, numeric ones as Decimals at unlimited precision: exact, as
    SQL's sums."""
    import numpy as np

    index: dict[tuple[Any, ...], int] = {}
    group = np.fromiter(
        (index.setdefault(k[:width], len(index)) for k in cells.keys), dtype=np.int64, count=len(cells.keys)
    )
    counts = np.zeros((len(index), cells.counts.shape[1]), dtype=np.int64)
    np.add.at(counts, group, cells.counts)
    sums: dict[str, list[Decimal]] = {}
    with decimal.localcontext() as ctx:
        ctx.prec = decimal.MAX_PREC  # additions are exact; the default 28 digits could round a long sum
        for name, values in cells.sums.items():
            acc = [Decimal(0)] * len(index)
            for g, v in zip(group.tolist(), values, strict=True):
                acc[g] += v
            sums[name] = acc
    return CellSums(cells.columns[:width], list(index), counts, sums)


def running(session: Session, experiment_id: int, by: str) -> dict[tuple[Any, ...], int]:
    """Running jobs per group, read live (few rows, on ``ix_jobs_experiment_status``): a lease changes too
    often to be worth a counter. Of sample 0 only, as every aggregate counts (``swarmq_agg_outcomes``)."""
    cols = {
        "condition": "j.condition",
        "replicate": "j.replicate",
        "task_type": "i.task_type",
        "agent": "coalesce(o.agent_id, -1)",
    }
    key = ", ".join(cols[c] for c in GROUP_COLUMNS[by])
    rows = session.execute(
        text(
            f"SELECT {key}, count(*) FROM jobs j JOIN issues i ON i.id = j.issue_id "
            f"LEFT JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = :e AND j.status = 'running' "
            f"AND {counters.PRIMARY} "
            f"GROUP BY {key}"
        ),
        {"e": experiment_id},
    ).all()
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def sum_counts(counts: Mapping[tuple[Any, ...], int], width: int) -> dict[tuple[Any, ...], int]:
    """Per-group counts (`running`) summed to the first ``width`` key columns."""
    out: dict[tuple[Any, ...], int] = {}
    for k, n in counts.items():
        out[k[:width]] = out.get(k[:width], 0) + n
    return out


def agent_type_columns(session: Session, experiment_id: int) -> dict[str, tuple[list[Any], ...]]:
    """Per condition, the (replicate, agent, task type, outcomes, successes) of every cell with an agent's
    outcomes, as five lists (cells in no particular order): tens of thousands of cells without a Python row
    each. SQL groups them by task type as well, so that a type's name crosses once, not once per cell."""
    rows = session.execute(
        text(
            "SELECT condition, task_type, array_agg(replicate), array_agg(agent), array_agg(outcomes), "
            "array_agg(successes) FROM agg_cells WHERE experiment_id = :e AND agent >= 0 AND outcomes > 0 "
            "GROUP BY condition, task_type"
        ),
        {"e": experiment_id},
    ).all()
    out: dict[str, tuple[list[Any], ...]] = {}
    for condition, task_type, replicates, agents, outcomes, successes in rows:
        columns = out.setdefault(str(condition), ([], [], [], [], []))
        for column, values in zip(
            columns, (replicates, agents, [str(task_type)] * len(agents), outcomes, successes), strict=True
        ):
            column.extend(values)
    return out


def issue_counts(session: Session, experiment_id: int, *, matched: bool) -> list[tuple[str, str, int, int]]:
    """(condition, issue, judged outcomes, successes) over all replicates, of the matched set or of all."""
    n, s = ("matched", "matched_successes") if matched else ("judged", "successes")
    rows = session.execute(
        text(
            f"SELECT condition, instance_id, {n}, {s} FROM agg_issues WHERE experiment_id = :e AND {n} > 0 "
            "ORDER BY condition, instance_id"
        ),
        {"e": experiment_id},
    ).all()
    return [(str(c), str(i), int(k), int(x)) for c, i, k, x in rows]


def all_paired_sums(
    session: Session, experiment_id: int
) -> dict[tuple[str, str], list[tuple[str, int, int]]]:
    """Every pair of conditions' (issue, pairs judged in both a and b, summed a − b success), by issue, from
    one read: stored once per unordered pair, keyed (a, b) with a before b in byte order (`oriented` turns one
    the other way)."""
    rows = session.execute(
        text(
            "SELECT a, b, instance_id, pairs, diff FROM agg_issue_pairs "
            "WHERE experiment_id = :e AND pairs > 0 ORDER BY a, b, instance_id"
        ),
        {"e": experiment_id},
    ).all()
    out: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for a, b, i, n, d in rows:
        out.setdefault((str(a), str(b)), []).append((str(i), int(n), int(d)))
    return out


def oriented(
    sums: Mapping[tuple[str, str], list[tuple[str, int, int]]], a: str, b: str
) -> list[tuple[str, int, int]]:
    """``a`` against ``b`` from `all_paired_sums`: the stored pair, its differences negated when b comes
    first."""
    if a.encode() < b.encode():
        return list(sums.get((a, b), []))
    return [(i, n, -d) for i, n, d in sums.get((b, a), [])]


FOLD_BATCH = 5000
"""Outcomes a worker's housekeeping folds per pass at most (`fold`): one short transaction, whatever the
backlog."""


def fold(
    engine: Engine, experiment_id: int | None = None, *, batch: int | None = None, wait: bool = True
) -> int:
    """Count outcomes written since the last fold into the aggregates (``swarmq_agg_fold``: the job path
    writes them unfolded, so that the counting is not in a worker's outcome statement); returns how many. Of
    ``experiment_id`` (None: every experiment), at most ``batch`` (None: all). ``wait``: wait for folds in
    progress, so that every outcome committed before this call is counted when it returns (what a report
    reads); without it (housekeeping), only outcomes whose swarm update is marked applied are taken (their
    worker is done with them: its applied mark never waits for a fold), and those another fold holds are left
    to it.

    Its own connection and transaction, committed here: a reader's session may be rolled back, and holds no
    aggregate row locks while it reads."""
    with engine.begin() as conn:
        n = conn.execute(
            text("SELECT swarmq_agg_fold(:e, :batch, :wait)"),
            {"e": experiment_id, "batch": batch, "wait": wait},
        ).scalar_one()
    return int(n)


def rebuild(session: Session, experiment_id: int) -> None:
    """Recount an experiment's aggregates from its rows (`swarmq db rebuild-aggregates`). Writes to jobs and
    outcomes wait for it (a table lock); the caller commits."""
    session.execute(text("SELECT swarmq_agg_rebuild(:e)"), {"e": experiment_id})
