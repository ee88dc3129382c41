"""The results aggregates: counters kept by triggers on ``jobs`` and ``outcomes`` (migration 0008 holds the SQL
and says what each table counts) and by `fold`, which counts new outcomes in batches after their commit
(migration 0010), read here in place of a scan of every outcome, and recounted by `rebuild`.

Exactness: once folded (a report folds before it reads: `report.queries.group_levels`), every count equals the
GROUP BY of `report.queries` over the same rows (tests/test_aggregates.py checks it on random data, and after
kill -9s of real workers); means and token rates equal it up to float
rounding (sums are kept as ``numeric`` of each value rounded to 15 digits); p95 comes from a histogram of
`BUCKETS_PER_OCTAVE` buckets per doubling, so it is within a factor 2^(1/16) (4.4%) of ``percentile_cont``.

Speed: results over a million outcomes read ~20,000 cells and ~150,000 histogram rows. Each table is read once
per report, summed by SQL to the finest grouping asked (`cell_sums`, `histograms`); coarser groupings are summed
from those groups here (`sum_cells`, `sum_histograms`: integer and numeric sums, exact), and the quantiles of
thousands of groups are computed in one vector pass (`quantiles`, equal to `quantile` group by group). numpy is
imported by the functions that use it: `swarmq status` reads through `report.queries` and starts without it.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import numpy as np

BUCKETS_PER_OCTAVE = 8
"""Histogram resolution: bucket b holds [2^(b/8), 2^((b+1)/8)) seconds (the migration's frozen copy:
``swarmq_agg_bucket``)."""
ZERO_BUCKET = -161
"""Times under 2^-20 s (about a microsecond), zero included: reported as 0."""
GROUP_COLUMNS = {
    "condition": ("condition",),
    "replicate": ("condition", "replicate"),
    "task_type": ("condition", "task_type"),
    "agent": ("condition", "replicate", "agent"),
}
"""The groupings the aggregates serve (the keys of `report.queries.GROUPINGS` they can answer)."""
HISTOGRAM_GROUPINGS = {"condition", "replicate", "agent"}
"""Groupings with a p95: the histogram is kept per (condition, replicate, agent), without the task type."""


def bucket_value(bucket: int) -> float:
    """A bucket's representative time: the geometric middle of its bounds (0 for `ZERO_BUCKET`)."""
    return 0.0 if bucket <= ZERO_BUCKET else 2.0 ** ((bucket + 0.5) / BUCKETS_PER_OCTAVE)


def quantile(histogram: Sequence[tuple[int, int]], q: float) -> float | None:
    """``percentile_cont(q)`` of the times a histogram ((bucket, count) in bucket order) holds, each time taken
    at its bucket's `bucket_value`: the two order statistics around rank q·(n−1), interpolated linearly."""
    n = sum(c for _, c in histogram)
    if n == 0:
        return None
    rank = q * (n - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    v_lo = v_hi = None
    seen = 0
    for bucket, count in histogram:
        if v_lo is None and lo < seen + count:
            v_lo = bucket_value(bucket)
        if hi < seen + count:
            v_hi = bucket_value(bucket)
            break
        seen += count
    assert v_lo is not None and v_hi is not None
    return v_lo + (rank - lo) * (v_hi - v_lo)


_NUMERIC = ("seconds_sum", "generation_sum")
_COUNTERS = (
    "jobs",
    "done",
    "failed",
    "outcomes",
    "scoring_errors",
    "judged",
    "successes",
    "judged_successes",
    "resolved",
    "imported",
    "seconds_n",
    "seconds_sum",
    "tokens_sum",
    "generation_n",
    "generation_sum",
    "length_n",
    "finish_n",
    "errors_n",
    "matched",
    "matched_successes",
)
INT_COUNTERS = tuple(c for c in _COUNTERS if c not in _NUMERIC)


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
    """``cells`` summed to the groups of their first ``width`` key columns (conditions of (condition, replicate)),
    in the order each first appears (groups in a longer key's order stay in its order, whatever the collation).
    Integer counters in int64, numeric ones as Decimals at unlimited precision: exact, as SQL's sums."""
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
    """Running jobs per group, read live (few rows, on ``ix_jobs_experiment_status``): a lease changes too often
    to be worth a counter."""
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


@dataclass(frozen=True)
class Histograms:
    """The job_seconds histograms of many groups, flat: bucket ``bucket[i]`` of group ``keys[group[i]]`` holds
    ``n[i]`` times. Rows are sorted by group, then bucket, each (group, bucket) once, and every group has one."""

    keys: list[tuple[Any, ...]]
    group: np.ndarray
    bucket: np.ndarray
    n: np.ndarray


def histograms(session: Session, experiment_id: int, by: str) -> Histograms:
    """Every group's histogram, ``agg_seconds`` summed by SQL to ``by``'s grouping (at (condition, replicate,
    agent), the table's own key, as it is). One row per group, its buckets and counts each packed into one
    string of big-endian binary (``int2send``, ``int8send``) that numpy reads as it is: 150,000 bucket rows
    arrive in a fraction of the time they take as rows or as arrays of Python ints."""
    import numpy as np

    cols = ", ".join(GROUP_COLUMNS[by])
    source = (
        "agg_seconds"
        if GROUP_COLUMNS[by] == ("condition", "replicate", "agent")  # the table's own key: no GROUP BY
        else f"(SELECT experiment_id, {cols}, bucket, sum(n) AS n FROM agg_seconds WHERE experiment_id = :e "
        f"GROUP BY experiment_id, {cols}, bucket) x"
    )
    rows = session.execute(
        text(
            f"SELECT {cols}, string_agg(int2send(bucket::int2), ''), string_agg(int8send(n::int8), '') "
            f"FROM {source} WHERE experiment_id = :e AND n > 0 GROUP BY {cols}"
        ),
        {"e": experiment_id},
    ).all()
    sizes = np.fromiter((len(r[-2]) // 2 for r in rows), dtype=np.int64, count=len(rows))
    group = np.repeat(np.arange(len(rows), dtype=np.int64), sizes)
    bucket = np.frombuffer(b"".join(r[-2] for r in rows), dtype=">i2").astype(np.int64)
    n = np.frombuffer(b"".join(r[-1] for r in rows), dtype=">i8").astype(np.int64)
    # Both strings of a group list its rows in the same order (one aggregation), but in no particular one.
    return Histograms([tuple(r[:-2]) for r in rows], *_sorted_cells(group, bucket, n))


DENSE_CELLS = 1 << 22
"""Up to this many possible (group, bucket) pairs, histogram rows are sorted and summed by counting
(`numpy.bincount`, linear); beyond, by sorting."""


def _sorted_cells(
    group: np.ndarray, bucket: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram rows with each (group, bucket) once, its counts summed, sorted by group then bucket. Counts are
    added as float64: exact, being integers far below 2^53."""
    import numpy as np

    if bucket.size == 0:
        return group, bucket, n
    low = int(bucket.min())
    span = int(bucket.max()) - low + 1
    codes = group * span + (bucket - low)
    size = (int(group.max()) + 1) * span
    if size <= DENSE_CELLS:
        summed = np.bincount(codes, weights=n, minlength=size)
        cells = np.flatnonzero(summed)
        counts = summed[cells]
    else:
        cells, inverse = np.unique(codes, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=n, minlength=cells.size)
    return cells // span, cells % span + low, counts.astype(np.int64)


def sum_histograms(h: Histograms, width: int) -> Histograms:
    """The histograms of the groupings by the first ``width`` key columns (condition of (condition, replicate,
    agent)), coarser groups in the order each first appears."""
    import numpy as np

    if not h.keys or width == len(h.keys[0]):
        return h
    coarse: dict[tuple[Any, ...], int] = {}
    index = np.fromiter(
        (coarse.setdefault(k[:width], len(coarse)) for k in h.keys), dtype=np.int64, count=len(h.keys)
    )
    return Histograms(list(coarse), *_sorted_cells(index[h.group], h.bucket, h.n))


def quantiles(h: Histograms, q: float) -> dict[tuple[Any, ...], float | None]:
    """`quantile` of every group at once: a running count over the sorted rows and the two order statistics found
    by binary search. The same arithmetic as `quantile` on each group's histogram, so the same floats."""
    import numpy as np

    if not h.keys:
        return {}
    cum = np.cumsum(h.n)
    groups = np.arange(len(h.keys))
    starts, ends = (
        np.searchsorted(h.group, groups, side="left"),
        np.searchsorted(h.group, groups, side="right"),
    )
    before = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0)
    total = cum[ends - 1] - before
    rank = q * (total - 1)
    lo, hi = np.floor(rank), np.ceil(rank)
    # The first row of the group whose running count passes rank lo (hi) holds that order statistic.
    at_lo = np.searchsorted(cum, before + lo, side="right")
    at_hi = np.searchsorted(cum, before + hi, side="right")
    low = int(h.bucket.min())  # buckets span a few hundred values at most (2^(b/8) seconds)
    values = np.array(
        [bucket_value(b) for b in range(low, int(h.bucket.max()) + 1)]
    )  # Python's pow, as `quantile`
    v_lo, v_hi = values[h.bucket[at_lo] - low], values[h.bucket[at_hi] - low]
    return dict(zip(h.keys, (v_lo + (rank - lo) * (v_hi - v_lo)).tolist(), strict=True))


def agent_type_columns(session: Session, experiment_id: int) -> dict[str, tuple[list[Any], ...]]:
    """Per condition, the (replicate, agent, task type, outcomes, successes) of every cell with an agent's outcomes,
    as five lists (cells in no particular order): tens of thousands of cells without a Python row each. SQL
    groups them by task type as well, so that a type's name crosses once, not once per cell."""
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
    """Every pair of conditions' (issue, pairs judged in both a and b, summed a − b success), by issue, from one
    read: stored once per unordered pair, keyed (a, b) with a before b in byte order (`oriented` turns one the
    other way)."""
    rows = session.execute(
        text(
            "SELECT a, b, instance_id, pairs, diff FROM agg_issue_pairs WHERE experiment_id = :e AND pairs > 0 "
            "ORDER BY a, b, instance_id"
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
    """``a`` against ``b`` from `all_paired_sums`: the stored pair, its differences negated when b comes first."""
    if a.encode() < b.encode():
        return list(sums.get((a, b), []))
    return [(i, n, -d) for i, n, d in sums.get((b, a), [])]


FOLD_BATCH = 5000
"""Outcomes a worker's housekeeping folds per pass at most (`fold`): one short transaction, whatever the backlog."""


def fold(
    engine: Engine, experiment_id: int | None = None, *, batch: int | None = None, wait: bool = True
) -> int:
    """Count outcomes written since the last fold into the aggregates (migration 0010: the job path writes them
    unfolded, so that the counting is not in a worker's outcome statement); returns how many. Of
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
