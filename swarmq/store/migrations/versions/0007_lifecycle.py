"""Experiments have a lifecycle: paused and cancelled experiments, paused and cancelled jobs.

``experiments.state`` (active | paused | cancelled) is what workers, the release and the reaper read before
moving an experiment's jobs (`queue.lifecycle`). Jobs get two statuses: ``paused`` (was queued when its
experiment was paused; queued again on resume) and ``cancelled`` (never runs). Both live in Postgres, so a
pause or a cancel holds whatever the broker still carries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen copies (migrations never import the app).
OLD_STATUSES = "('pending', 'queued', 'running', 'done', 'failed')"
NEW_STATUSES = "('pending', 'queued', 'running', 'done', 'failed', 'paused', 'cancelled')"


def upgrade() -> None:
    op.add_column(
        "experiments", sa.Column("state", sa.String(length=16), server_default="active", nullable=False)
    )
    op.create_check_constraint(
        "experiments_state_check", "experiments", "state IN ('active', 'paused', 'cancelled')"
    )
    op.drop_constraint("jobs_status_check", "jobs", type_="check")
    op.create_check_constraint("jobs_status_check", "jobs", f"status IN {NEW_STATUSES}")


def downgrade() -> None:
    # A paused job was queued, a cancelled one was pending or queued: the old schema knows only those.
    op.execute("UPDATE jobs SET status = 'queued' WHERE status = 'paused'")
    op.execute("UPDATE jobs SET status = 'pending' WHERE status = 'cancelled'")
    op.drop_constraint("jobs_status_check", "jobs", type_="check")
    op.create_check_constraint("jobs_status_check", "jobs", f"status IN {OLD_STATUSES}")
    op.drop_constraint("experiments_state_check", "experiments", type_="check")
    op.drop_column("experiments", "state")
