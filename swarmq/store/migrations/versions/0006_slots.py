"""Outcomes record the batching they were generated under.

``slots`` is how many sequences the worker's llama.cpp context decoded together (`swarmq worker --slots`);
``mean_batch_size`` how many, on average, shared a decode step with this job's. llama.cpp's batched kernels
may change the last bits of the logits, so a text is reproduced exactly only under the same batching:
`replay` says which configuration it re-runs. Rows written before this revision were generated one at a time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outcomes", sa.Column("slots", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("outcomes", sa.Column("mean_batch_size", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("outcomes", "mean_batch_size")
    op.drop_column("outcomes", "slots")
