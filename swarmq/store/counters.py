"""The results counters, defined once: the rules an outcome is counted by, and what each counter of an
``agg_cells`` row counts.

Each counter's ``sql`` is its value for one job ``j`` and its outcome ``o``, 0 for an outcome's counter when
the job has none (``o`` all NULL); the server-side SQL adds a sign. The files in ``store/sql`` write these
expressions out, readable as they run; ``tests/test_sql_files.py`` checks that they write exactly these.
`store.schema` builds the table's columns from `CELL_COUNTERS`, `store.aggregates` reads them in this order,
and the recount in `report.queries` counts by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SCORING_ERROR_STATUS = "error"
"""``outcomes.score_status`` of an outcome its scorer could not judge (`benchmarks.base.UNJUDGED`)."""
SCORING_ERROR = f"coalesce(o.score_status = '{SCORING_ERROR_STATUS}', false)"
"""The scorer could not judge the outcome (sandbox, repository, harness): no evidence about the model."""
JUDGED = f"o.id IS NOT NULL AND NOT {SCORING_ERROR}"
"""The job has an outcome its scorer judged: what success rates divide by."""
SUCCESS = "coalesce(o.success, false)"
"""A success under the experiment's rule: what the swarm learned from is what results count."""
PRIMARY = "j.sample = 0"
"""The jobs the results count, over jobs ``j``: each (condition, replicate, issue)'s sample 0. With
``generation.samples: n``, sample 0 is the job a one-sample run has and the only one that feeds the swarm;
counting it alone keeps every rate, comparison, swarm metric and curve what that run's would be. pass@k,
progress and export read every sample. The aggregates' SQL files write it out (a test checks each one)."""


@dataclass(frozen=True)
class Counter:
    name: str
    sql: str
    """Its value for one job and its outcome. The matched counters count `JUDGED` outcomes whose (replicate,
    issue) has a judged outcome in every condition: ``swarmq_agg_outcomes`` keeps that per pair as bitmasks,
    the recount as `report.queries.MATCHED`."""
    source: Literal["job", "outcome", "matched"]
    """What it counts: the job (in its outcome's cell), the outcome, or the outcome in the matched set."""
    numeric: bool = False
    """Kept as ``numeric`` (sums of seconds, exact); the others are ``bigint``."""


CELL_COUNTERS: tuple[Counter, ...] = (
    Counter("jobs", "1", "job"),
    Counter("done", "(j.status = 'done')::int", "job"),
    Counter("failed", "(j.status = 'failed')::int", "job"),
    Counter("outcomes", "(o.id IS NOT NULL)::int", "outcome"),
    Counter("scoring_errors", f"{SCORING_ERROR}::int", "outcome"),
    Counter("judged", f"({JUDGED})::int", "outcome"),
    Counter("successes", f"{SUCCESS}::int", "outcome"),
    Counter("judged_successes", f"({JUDGED} AND {SUCCESS})::int", "outcome"),
    Counter("resolved", "coalesce(o.resolved, false)::int", "outcome"),
    Counter("imported", "(o.resolved IS NOT NULL)::int", "outcome"),
    Counter("seconds_n", "(o.job_seconds IS NOT NULL)::int", "outcome"),
    Counter("seconds_sum", "coalesce(o.job_seconds::numeric, 0)", "outcome", numeric=True),
    Counter("tokens_sum", "coalesce(o.completion_tokens, 0)", "outcome"),
    Counter("generation_n", "(o.generation_seconds IS NOT NULL)::int", "outcome"),
    Counter("generation_sum", "coalesce(o.generation_seconds::numeric, 0)", "outcome", numeric=True),
    Counter("length_n", "coalesce(o.finish_reason = 'length', false)::int", "outcome"),
    Counter("finish_n", "(o.finish_reason IS NOT NULL)::int", "outcome"),
    Counter("errors_n", "(o.error IS NOT NULL)::int", "outcome"),
    Counter("matched", f"({JUDGED})::int", "matched"),
    Counter("matched_successes", f"({JUDGED} AND {SUCCESS})::int", "matched"),
)
"""The counters of an ``agg_cells`` row, in column order."""
JOB_COUNTERS = tuple(c for c in CELL_COUNTERS if c.source == "job")
INT_COUNTERS = tuple(c.name for c in CELL_COUNTERS if not c.numeric)
NUMERIC_COUNTERS = tuple(c.name for c in CELL_COUNTERS if c.numeric)
