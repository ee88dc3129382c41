"""Outcomes record how much of their prompt came from the model's prefix cache.

``prompt_cached_tokens``: prompt tokens whose KV cells were copied from the cache (0 on a miss or with the
cache off); ``prompt_eval_tokens``: prompt tokens the model evaluated for this job. Together they are
``prompt_tokens``; prompt tokens/s divides the evaluated ones by ``prompt_seconds``. Rows written before this
revision have NULL in both: unknown.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outcomes", sa.Column("prompt_cached_tokens", sa.Integer(), nullable=True))
    op.add_column("outcomes", sa.Column("prompt_eval_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("outcomes", "prompt_eval_tokens")
    op.drop_column("outcomes", "prompt_cached_tokens")
