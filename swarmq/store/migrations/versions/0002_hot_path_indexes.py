"""Partial indexes for the worker's hot path; success rates over every job with an outcome.

Every job checks its stream for swarm updates left half-done by a dead worker: almost always none, so a
partial index over the unapplied outcomes keeps that check at one index probe however large the table.
The reaper's look for streams with pending jobs and none in flight gets the same treatment.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_outcomes_unapplied ON outcomes (job_id) WHERE NOT update_applied")
    op.execute(
        "CREATE INDEX ix_jobs_pending_stream ON jobs (experiment_id, condition, replicate) "
        "WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX ix_jobs_active_stream ON jobs (experiment_id, condition, replicate) "
        "WHERE status IN ('queued', 'running')"
    )

    # Success rates count every job with an outcome (failed ones too), as `swarmq results` does.
    op.execute("DROP VIEW v_condition_summary")
    op.execute(V_CONDITION_SUMMARY.format(rate_filter=""))


def downgrade() -> None:
    op.execute("DROP VIEW v_condition_summary")
    op.execute(V_CONDITION_SUMMARY.format(rate_filter="FILTER (WHERE status = 'done')"))
    op.execute("DROP INDEX IF EXISTS ix_jobs_active_stream")
    op.execute("DROP INDEX IF EXISTS ix_jobs_pending_stream")
    op.execute("DROP INDEX IF EXISTS ix_outcomes_unapplied")


V_CONDITION_SUMMARY = """
CREATE VIEW v_condition_summary AS
SELECT experiment, condition,
       count(*) AS jobs,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(success) AS outcomes,
       count(*) FILTER (WHERE success) AS successes,
       avg(success::int) {rate_filter} AS success_rate,
       avg(job_seconds) AS mean_job_seconds,
       sum(completion_tokens) / nullif(sum(generation_seconds), 0) AS generation_tokens_per_second,
       avg((finish_reason = 'length')::int) {rate_filter} AS share_max_tokens
FROM v_outcomes
GROUP BY experiment, condition
"""
