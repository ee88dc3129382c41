"""Every server-side function, trigger and view of swarmq in its hand-written file (``store/sql/0012/``).

The behaviour is that of the revisions before (0008 to 0010): the same rows, the same counters, the same
locks. ``swarmq_agg_outcomes`` writes each counter once (an outcome's row counted in its agent's cell and out
of cell -1 by a two-row ``VALUES``); every counter is 0 for a job without an outcome, so the rebuild counts
jobs and outcomes in one pass. The downgrade loads the files of the revisions that wrote the objects before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from swarmq.store.sql import read

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PREVIOUS = {
    "swarmq_agg_bucket": "0008",
    "swarmq_agg_full": "0008",
    "swarmq_agg_conditions": "0008",
    "swarmq_agg_outcomes": "0010",
    "swarmq_agg_rebuild": "0010",
    "swarmq_agg_fold": "0010",
    "swarmq_agg_jobs_inserted": "0008",
    "swarmq_agg_job_status": "0010",
    "swarmq_agg_jobs_deleted": "0008",
    "swarmq_agg_outcomes_written": "0010",
    "swarmq_agg_truncated": "0008",
    "swarmq_close": "0009",
    "swarmq_release": "0009",
    "v_condition_summary": "0010",
    "v_agent_summary": "0010",
}
"""Each object this revision replaces, in load order (a function before its callers' files), and the
revision whose file it replaces."""


def upgrade() -> None:
    for name in PREVIOUS:
        op.execute(read("0012", name))


def downgrade() -> None:
    for name, previous in PREVIOUS.items():
        op.execute(read(previous, name))
