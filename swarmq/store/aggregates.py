"""The results aggregates: counters that triggers on ``jobs`` and ``outcomes`` keep in the writing transaction
(migration 0008 holds the SQL and says what each table counts), read here in place of a scan of every
outcome, and recounted by `rebuild`.

Exactness: every count equals the GROUP BY of `report.queries` over the same rows (tests/test_aggregates.py
checks it on random data, and after kill -9s of real workers); means and token rates equal it up to float
rounding (sums are kept as ``numeric`` of each value rounded to 15 digits); p95 comes from a histogram of
`BUCKETS_PER_OCTAVE` buckets per doubling, so it is within a factor 2^(1/16) (4.4%) of ``percentile_cont``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

BUCKETS_PER_OCTAVE = 8
"""Histogram resolution: bucket b holds [2^(b/8), 2^((b+1)/8)) seconds (the migration's frozen copy:
``swarmq_agg_bucket``)."""
ZERO_BUCKET = -161
"""Times under 2^-20 s (about a microsecond), zero included: reported as 0."""
GROUP_COLUMNS = {"condition": ("condition",), "replicate": ("condition", "replicate"),
                 "task_type": ("condition", "task_type"), "agent": ("condition", "replicate", "agent")}  # fmt: skip
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


def cell_groups(session: Session, experiment_id: int, by: str) -> list[dict[str, Any]]:
    """Summed cell counters per group (``agent`` -1: jobs without an outcome, and failure outcomes). A cell's
    counters fit an int (they count one stream's jobs): summing them as int is int8 arithmetic, not numeric."""
    cols = ", ".join(GROUP_COLUMNS[by])
    sums = ", ".join(f"sum({c}) AS {c}" if c in _NUMERIC else f"sum({c}::int) AS {c}" for c in _COUNTERS)
    sql = f"SELECT {cols}, {sums} FROM agg_cells WHERE experiment_id = :e GROUP BY {cols} ORDER BY {cols}"
    return [dict(r) for r in session.execute(text(sql), {"e": experiment_id}).mappings()]


_NUMERIC = ("seconds_sum", "generation_sum")
_COUNTERS = ("jobs", "done", "failed", "outcomes", "scoring_errors", "judged", "successes", "judged_successes",
             "resolved", "imported", "seconds_n", "seconds_sum", "tokens_sum", "generation_n", "generation_sum",
             "length_n", "finish_n", "errors_n", "matched", "matched_successes")  # fmt: skip


def running(session: Session, experiment_id: int, by: str) -> dict[tuple[Any, ...], int]:
    """Running jobs per group, read live (few rows, on ``ix_jobs_experiment_status``): a lease changes too often
    to be worth a counter."""
    cols = {"condition": "j.condition", "replicate": "j.replicate", "task_type": "i.task_type",
            "agent": "coalesce(o.agent_id, -1)"}  # fmt: skip
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


def p95_seconds(session: Session, experiment_id: int, by: str, q: float = 0.95) -> dict[tuple[Any, ...], float | None]:
    """Each group's ``q`` quantile of job_seconds from the histogram (`quantile`), one row per group."""
    cols = ", ".join(GROUP_COLUMNS[by])
    per_bucket = (
        "agg_seconds" if GROUP_COLUMNS[by] == ("condition", "replicate", "agent")  # the table's own key: no GROUP BY
        else f"(SELECT {cols}, bucket, sum(n)::bigint AS n FROM agg_seconds WHERE experiment_id = :e "
        f"GROUP BY {cols}, bucket) x"
    )  # fmt: skip
    where = "experiment_id = :e AND n > 0" if per_bucket == "agg_seconds" else "n > 0"
    rows = session.execute(
        text(
            f"SELECT {cols}, array_agg(bucket ORDER BY bucket), array_agg(n ORDER BY bucket) FROM {per_bucket} "
            f"WHERE {where} GROUP BY {cols}"
        ),
        {"e": experiment_id},
    ).all()
    return {tuple(r[:-2]): quantile(list(zip(r[-2], r[-1], strict=True)), q) for r in rows}


def agent_type_cells(session: Session, experiment_id: int) -> list[tuple[str, int, int, str, int, int]]:
    """(condition, replicate, agent, task type, outcomes, successes) of every cell with an agent's outcomes."""
    rows = session.execute(
        text(
            "SELECT condition, replicate, agent, task_type, outcomes, successes FROM agg_cells "
            "WHERE experiment_id = :e AND agent >= 0 AND outcomes > 0 ORDER BY 1, 2, 3, 4"
        ),
        {"e": experiment_id},
    ).all()
    return [(str(c), int(r), int(a), str(t), int(n), int(s)) for c, r, a, t, n, s in rows]


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


def paired_sums(session: Session, experiment_id: int, a: str, b: str) -> list[tuple[str, int, int]]:
    """(issue, pairs judged in both a and b, summed a − b success), by issue. Stored once per unordered pair of
    conditions, as (a, b) with a before b in byte order."""
    first, second, sign = (a, b, 1) if a.encode() < b.encode() else (b, a, -1)
    rows = session.execute(
        text(
            "SELECT instance_id, pairs, diff FROM agg_issue_pairs WHERE experiment_id = :e AND a = :a AND b = :b "
            "AND pairs > 0 ORDER BY instance_id"
        ),
        {"e": experiment_id, "a": first, "b": second},
    ).all()
    return [(str(i), int(n), sign * int(d)) for i, n, d in rows]


def rebuild(session: Session, experiment_id: int) -> None:
    """Recount an experiment's aggregates from its rows (`swarmq db rebuild-aggregates`). Writes to jobs and
    outcomes wait for it (a table lock); the caller commits."""
    session.execute(text("SELECT swarmq_agg_rebuild(:e)"), {"e": experiment_id})
