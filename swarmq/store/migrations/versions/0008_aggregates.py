"""Results from aggregates kept at write time: `swarmq results` and `v_condition_summary` read counters, not
a million outcome rows.

Every write to ``jobs`` and ``outcomes`` passes a trigger that applies its change to five tables, in the same
transaction as the write (so a crash, a rollback or a kill -9 keeps them equal to a recount; ``COPY``, the
lifecycle commands and `import-eval` included):

* ``agg_cells``: per (experiment, condition, replicate, task type, agent) counters of jobs (done, failed) and
  outcomes (judged, successes, scoring errors, harness verdicts, seconds, tokens, ...). ``agent`` is the
  outcome's agent, -1 for a job without an outcome or a failure outcome (no agent). ``matched`` and
  ``matched_successes`` count the judged outcomes inside the matched set (`report.queries.MATCHED`).
* ``agg_pairs``: per (experiment, replicate, issue): bitmasks of the conditions with a judged outcome and with
  a success (bit k: the k-th condition of the config in byte order; at most 64) and each condition's agent.
  A pair is matched when every condition's bit is set. Each change recomputes the pairs it touches from the
  rows (under the pair's row lock) and applies the difference of their contributions.
* ``agg_issues``: per (experiment, condition, issue): judged outcomes and successes, all and matched: the
  issue-clustered intervals (`report.queries.issue_counts`).
* ``agg_issue_pairs``: per (experiment, issue, condition a < b): (issue, replicate) pairs judged in both and
  the summed a − b success: the paired comparisons (`report.queries.paired_sums`).
* ``agg_seconds``: per (experiment, condition, replicate, agent) a histogram of ``job_seconds`` in buckets of
  2^(1/8) (`store.histograms.BUCKETS_PER_OCTAVE`): p95 within a factor 2^(1/16) (4.4%).

Jobs are removed only with their experiment (its aggregates go by cascade); a DELETE of single jobs is
refused. ``swarmq db rebuild-aggregates`` (`swarmq_agg_rebuild`) recounts an experiment from the rows; this
migration does it for every existing experiment. Sums of seconds are ``numeric`` (each float8 value rounded to
15 digits): additions and subtractions are exact, so maintained and rebuilt tables are equal, not nearly.

The SQL: ``store/sql/0008/`` (and ``0003/v_condition_summary.sql``, the view a downgrade restores).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

from swarmq.store.sql import read

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FUNCTIONS = (
    "swarmq_agg_bucket",
    "swarmq_agg_full",
    "swarmq_agg_conditions",
    "swarmq_agg_outcomes",
    "swarmq_agg_rebuild",
    "swarmq_agg_jobs_inserted",
    "swarmq_agg_job_status",
    "swarmq_agg_jobs_deleted",
    "swarmq_agg_outcomes_written",
    "swarmq_agg_truncated",
)
"""The files this revision loads after its tables, in dependency order (each trigger function's file
creates its triggers)."""
SIGNATURES = (
    "swarmq_agg_truncated()",
    "swarmq_agg_outcomes_written()",
    "swarmq_agg_jobs_deleted()",
    "swarmq_agg_job_status()",
    "swarmq_agg_jobs_inserted()",
    "swarmq_agg_rebuild(integer)",
    "swarmq_agg_outcomes(outcomes[], outcomes[])",
    "swarmq_agg_conditions(integer)",
    "swarmq_agg_full(integer)",
    "swarmq_agg_bucket(double precision)",
)
TRIGGERS = (
    ("agg_jobs_inserted", "jobs"),
    ("agg_job_status", "jobs"),
    ("agg_jobs_deleted", "jobs"),
    ("agg_outcomes_inserted", "outcomes"),
    ("agg_outcomes_deleted", "outcomes"),
    ("agg_outcomes_updated", "outcomes"),
    ("agg_jobs_truncated", "jobs"),
    ("agg_outcomes_truncated", "outcomes"),
)
TABLES = ("agg_issue_pairs", "agg_issues", "agg_pairs", "agg_seconds", "agg_cells")


def upgrade() -> None:
    op.execute(read("0008", "agg_tables"))
    for name in FUNCTIONS:
        op.execute(read("0008", name))
    op.execute("SELECT swarmq_agg_rebuild(id) FROM experiments")  # backfill
    op.execute("DROP VIEW v_condition_summary")
    op.execute(read("0008", "v_condition_summary"))
    op.execute(read("0008", "v_agent_summary"))


def downgrade() -> None:
    op.execute("DROP VIEW v_agent_summary")
    op.execute("DROP VIEW v_condition_summary")
    op.execute(read("0003", "v_condition_summary"))
    for name, table in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for fn in SIGNATURES:
        op.execute(f"DROP FUNCTION {fn}")
    for t in TABLES:
        op.execute(f"DROP TABLE {t}")
