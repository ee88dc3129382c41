"""Every terminal job has an outcome; streams advance together; the dataset an experiment used is recorded.

* A job that fails without running to an outcome (a worker died ``max_attempts`` times, an unexpected error)
  now gets a *failure outcome*: success false, its reason in ``error``, no agent (``agent_id`` NULL: it was
  never routed, or its routing is not known). Strict streams then have no gaps that a resume fills later out
  of order, and every denominator counts every job. Failed jobs of earlier versions get theirs here.
* ``ix_jobs_open_position`` serves the experiment-wide release (`queue.jobs.release`): the lowest position
  still open and the pending jobs inside the position window, each one short index range.
* ``experiments.dataset``: the dataset revision an experiment was read at and a fingerprint of the rows it
  used (`experiment.dataset.DatasetRecord`).
* ``jobs.model_key``: the queue of the model a job runs on. An experiment may run several models (``models:``,
  or a condition's own ``model:``); ``experiments.model_key`` stays its first model's.
* ``outcomes.gpu_uuid``: the GPU's UUID beside its index (containers number their GPUs from 0).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("outcomes", "agent_id", existing_type=sa.Integer(), nullable=True)
    op.add_column("experiments", sa.Column("dataset", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("outcomes", sa.Column("gpu_uuid", sa.String(length=64), nullable=True))
    op.add_column("jobs", sa.Column("model_key", sa.String(length=200), nullable=True))
    op.execute("UPDATE jobs SET model_key = e.model_key FROM experiments e WHERE e.id = jobs.experiment_id")
    op.alter_column("jobs", "model_key", existing_type=sa.String(length=200), nullable=False)
    op.execute(
        "CREATE INDEX ix_jobs_open_position ON jobs (experiment_id, position) "
        "WHERE status IN ('pending', 'queued', 'running')"
    )
    # A frozen copy of the failure outcome of `store.outcomes.failure_record` (migrations never import the
    # app).
    # The rule is the one the experiment's other outcomes were judged by, else its configured rule.
    op.execute(
        """
        INSERT INTO outcomes (job_id, completion, finish_reason, prompt_tokens, completion_tokens,
                              worker, model_name, model_sha256, llama_cpp_version, prompt,
                              prompt_sha256, chat, sampling, error, agent_id, task_type, state_version,
                              staleness, example_ids, update_applied, success, success_rule,
                              score_status, score_detail)
        SELECT j.id, '', 'error', 0, 0, coalesce(split_part(j.lease_owner, '/', 1), ''),
               coalesce(e.config->'model'->>'path', ''), '', '', '', '', false, '{}'::jsonb,
               coalesce(j.error, 'failed'), NULL, i.task_type, 0, 0, '[]'::jsonb, false,
               false, coalesce((SELECT o2.success_rule FROM outcomes o2 JOIN jobs j2 ON j2.id = o2.job_id
                                WHERE j2.experiment_id = j.experiment_id LIMIT 1),
                               e.config->'success'->>'rule', 'scorer'),
               'skipped', '{}'::jsonb
        FROM jobs j JOIN issues i ON i.id = j.issue_id JOIN experiments e ON e.id = j.experiment_id
        WHERE j.status = 'failed' AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.job_id = j.id)
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM outcomes WHERE agent_id IS NULL")
    op.execute("DROP INDEX IF EXISTS ix_jobs_open_position")
    op.drop_column("jobs", "model_key")
    op.drop_column("outcomes", "gpu_uuid")
    op.drop_column("experiments", "dataset")
    op.alter_column("outcomes", "agent_id", existing_type=sa.Integer(), nullable=False)
