"""Outcomes record what the router chose from, and the order their swarm updates were applied.

``routing`` keeps the per-agent probabilities or scores a routing decision was made from (they were computed
and thrown away). ``applied_version`` is the stream state version an update produced in Redis: rebuilding a
stream replays outcomes in that order, which in relaxed streams can differ from commit order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outcomes", sa.Column("routing", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("outcomes", sa.Column("applied_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("outcomes", "applied_version")
    op.drop_column("outcomes", "routing")
