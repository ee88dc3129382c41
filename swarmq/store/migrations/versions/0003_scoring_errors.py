"""Scoring errors are not failures: the condition summary states them and leaves them out of the rate.

An outcome whose scorer could not judge it (``score_status = 'error'``: sandbox, repository or harness
trouble) says nothing about the model, so `v_condition_summary` counts it in its own column and computes
the success rate over the judged outcomes, as `swarmq results` does. Harness verdicts (`import-eval`) are
reported beside, as ``resolved`` of ``imported``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

from swarmq.store.sql import read

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP VIEW v_condition_summary")
    op.execute(read("0003", "v_condition_summary"))


def downgrade() -> None:
    op.execute("DROP VIEW v_condition_summary")
    op.execute(
        """
        CREATE VIEW v_condition_summary AS
        SELECT experiment, condition,
               count(*) AS jobs,
               count(*) FILTER (WHERE status = 'done') AS done,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(success) AS outcomes,
               count(*) FILTER (WHERE success) AS successes,
               avg(success::int) AS success_rate,
               avg(job_seconds) AS mean_job_seconds,
               sum(completion_tokens) / nullif(sum(generation_seconds), 0) AS generation_tokens_per_second,
               avg((finish_reason = 'length')::int) AS share_max_tokens
        FROM v_outcomes
        GROUP BY experiment, condition
        """
    )
