"""Partial indexes for the worker's hot path.

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
        "CREATE INDEX ix_jobs_pending_stream ON jobs (experiment_id, condition, replicate) WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX ix_jobs_active_stream ON jobs (experiment_id, condition, replicate) "
        "WHERE status IN ('queued', 'running')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_jobs_active_stream")
    op.execute("DROP INDEX IF EXISTS ix_jobs_pending_stream")
    op.execute("DROP INDEX IF EXISTS ix_outcomes_unapplied")
