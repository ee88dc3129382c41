"""Several samples per (condition, replicate, issue): ``jobs.sample`` (`generation.samples`).

Sample 0 is the job a one-sample run has, and the only one the results aggregates, their views and the swarm
count; the other samples (1 … n − 1) share its position in the stream and run before it
(``swarmq_release``). Each (experiment, condition, replicate) holds one job per (issue, sample) and per
(position, sample); ``v_outcomes`` shows each job's ``sample``. Existing jobs are sample 0, so every stored
experiment reads as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from swarmq.store.sql import read

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PREVIOUS = {
    "swarmq_agg_outcomes": "0012",
    "swarmq_agg_rebuild": "0012",
    "swarmq_agg_jobs_inserted": "0012",
    "swarmq_agg_job_status": "0012",
    "swarmq_release": "0012",
    "v_condition_summary": "0012",
    "v_agent_summary": "0012",
    "v_outcomes": "0001",
}
"""Each object this revision replaces, in load order, and the revision whose file it replaces."""

KEYS = {
    "jobs_experiment_id_condition_replicate_instance_id_key": "instance_id",
    "jobs_experiment_id_condition_replicate_position_key": "position",
}
"""The one-job-per-cell keys of revision 0001, by name, and the column each one makes unique."""


def upgrade() -> None:
    op.add_column("jobs", sa.Column("sample", sa.SmallInteger(), server_default="0", nullable=False))
    op.create_check_constraint("jobs_sample_check", "jobs", "sample >= 0")
    for name, column in KEYS.items():
        op.drop_constraint(name, "jobs", type_="unique")
        keys = ["experiment_id", "condition", "replicate", column, "sample"]
        op.create_unique_constraint(f"{name.removesuffix('_key')}_sample_key", "jobs", keys)
    for name in PREVIOUS:
        op.execute(read("0013", name))


def downgrade() -> None:
    # Refused, not lossy: an experiment of several samples has no form in the older schema.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM jobs WHERE sample > 0) THEN RAISE EXCEPTION "
        "'experiments with generation.samples > 1 exist: delete them before downgrading below 0013'; "
        "END IF; END $$"
    )
    op.execute("DROP VIEW v_outcomes")  # a view cannot lose a column in place
    for name, previous in PREVIOUS.items():
        op.execute(read(previous, name))
    for name, column in KEYS.items():
        op.drop_constraint(f"{name.removesuffix('_key')}_sample_key", "jobs", type_="unique")
        op.create_unique_constraint(name, "jobs", ["experiment_id", "condition", "replicate", column])
    op.drop_constraint("jobs_sample_check", "jobs", type_="check")
    op.drop_column("jobs", "sample")
