"""The job_seconds histograms of the results aggregates (``agg_seconds``, kept by ``swarmq_agg_outcomes`` in
the buckets of ``swarmq_agg_bucket``): read per group, summed to coarser groups, and their quantiles.

A p95 from a histogram of `BUCKETS_PER_OCTAVE` buckets per doubling is within a factor 2^(1/16) (4.4%) of
``percentile_cont``. Each table is read once per report, summed by SQL to the finest grouping asked
(`histograms`); coarser groupings are summed here (`sum_histograms`), and the quantiles of thousands of groups
are computed in one vector pass (`quantiles`, equal to `quantile` group by group). numpy is imported by the
functions that use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.store.aggregates import GROUP_COLUMNS

if TYPE_CHECKING:
    import numpy as np

BUCKETS_PER_OCTAVE = 8
"""Histogram resolution: bucket b holds [2^(b/8), 2^((b+1)/8)) seconds (the server side's:
``swarmq_agg_bucket``)."""
ZERO_BUCKET = -161
"""Times under 2^-20 s (about a microsecond), zero included: reported as 0."""
HISTOGRAM_GROUPINGS = {"condition", "replicate", "agent"}
"""Groupings with a p95: the histogram is kept per (condition, replicate, agent), without the task type."""


def bucket_value(bucket: int) -> float:
    """A bucket's representative time: the geometric middle of its bounds (0 for `ZERO_BUCKET`)."""
    return 0.0 if bucket <= ZERO_BUCKET else 2.0 ** ((bucket + 0.5) / BUCKETS_PER_OCTAVE)


def quantile(histogram: Sequence[tuple[int, int]], q: float) -> float | None:
    """``percentile_cont(q)`` of the times a histogram ((bucket, count) in bucket order) holds, each time
    taken at its bucket's `bucket_value`: the two order statistics around rank q·(n−1), interpolated
    linearly."""
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


@dataclass(frozen=True)
class Histograms:
    """The job_seconds histograms of many groups, flat: bucket ``bucket[i]`` of group ``keys[group[i]]`` holds
    ``n[i]`` times. Rows are sorted by group, then bucket, each (group, bucket) once, and every group has
    one."""

    keys: list[tuple[Any, ...]]
    group: np.ndarray
    bucket: np.ndarray
    n: np.ndarray


def histograms(session: Session, experiment_id: int, by: str) -> Histograms:
    """Every group's histogram, ``agg_seconds`` summed by SQL to ``by``'s grouping (at (condition, replicate,
    agent), the table's own key, as it is). One row per group, its buckets and counts each packed into one
    string of big-endian binary (``int2send``, ``int8send``) that numpy reads as it is, not a Python object
    per bucket row."""
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
    """Histogram rows with each (group, bucket) once, its counts summed, sorted by group then bucket. Counts
    are added as float64: exact, being integers far below 2^53."""
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
    """`quantile` of every group at once: a running count over the sorted rows and the two order statistics
    found by binary search. The same arithmetic as `quantile` on each group's histogram, so the same
    floats."""
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
