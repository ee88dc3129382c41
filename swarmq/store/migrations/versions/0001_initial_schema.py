"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Tables experiments, issues, jobs, outcomes, and two views for psql users:
v_outcomes (one flat row per job with its outcome) and v_condition_summary (per experiment and condition).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("benchmark", sa.String(length=32), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Text(), nullable=False),
        sa.Column("task_type", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("repo", sa.Text(), nullable=True),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_id", "instance_id"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("condition", sa.String(length=64), nullable=False),
        sa.Column("replicate", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'queued', 'running', 'done', 'failed')", name="jobs_status_check"
        ),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_id", "condition", "replicate", "instance_id"),
        sa.UniqueConstraint("experiment_id", "condition", "replicate", "position"),
    )
    op.create_index("ix_jobs_experiment_status", "jobs", ["experiment_id", "status"], unique=False)
    op.create_index("ix_jobs_status_lease", "jobs", ["status", "lease_expires_at"], unique=False)
    op.create_table(
        "outcomes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("completion", sa.Text(), nullable=False),
        sa.Column("finish_reason", sa.String(length=16), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("load_seconds", sa.Float(), nullable=True),
        sa.Column("prompt_seconds", sa.Float(), nullable=True),
        sa.Column("generation_seconds", sa.Float(), nullable=True),
        sa.Column("tokens_per_second", sa.Float(), nullable=True),
        sa.Column("job_seconds", sa.Float(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.Text(), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("llama_cpp_version", sa.String(length=32), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("prompt_sha256", sa.String(length=64), nullable=False),
        sa.Column("chat", sa.Boolean(), nullable=False),
        sa.Column("sampling", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("task_type", sa.String(length=32), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("staleness", sa.Integer(), nullable=False),
        sa.Column("example_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("update_applied", sa.Boolean(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("success_rule", sa.String(length=16), nullable=False),
        sa.Column("score_status", sa.String(length=16), nullable=True),
        sa.Column("score_detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("scoring_seconds", sa.Float(), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.execute(V_OUTCOMES)
    op.execute(V_CONDITION_SUMMARY)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_condition_summary")
    op.execute("DROP VIEW IF EXISTS v_outcomes")
    op.drop_table("outcomes")
    op.drop_index("ix_jobs_status_lease", table_name="jobs")
    op.drop_index("ix_jobs_experiment_status", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("issues")
    op.drop_table("experiments")


V_OUTCOMES = """
CREATE VIEW v_outcomes AS
SELECT e.name AS experiment, j.id AS job_id, j.condition, j.replicate, j.instance_id, j.position, j.seq,
       j.status, j.attempts, j.error AS job_error, i.task_type, i.category, i.repo,
       o.agent_id, o.state_version, o.staleness, o.update_applied, o.success, o.success_rule, o.score_status,
       o.resolved, o.finish_reason, o.prompt_tokens, o.completion_tokens, o.prompt_seconds,
       o.generation_seconds, o.tokens_per_second, o.job_seconds, o.scoring_seconds, o.worker, o.gpu_index,
       o.model_name, o.error, o.created_at AS finished_at
FROM jobs j
JOIN experiments e ON e.id = j.experiment_id
JOIN issues i ON i.id = j.issue_id
LEFT JOIN outcomes o ON o.job_id = j.id
"""

V_CONDITION_SUMMARY = """
CREATE VIEW v_condition_summary AS
SELECT experiment, condition,
       count(*) AS jobs,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE success) AS successes,
       avg(success::int) FILTER (WHERE status = 'done') AS success_rate,
       avg(job_seconds) AS mean_job_seconds,
       sum(completion_tokens) / nullif(sum(generation_seconds), 0) AS generation_tokens_per_second,
       avg((finish_reason = 'length')::int) FILTER (WHERE status = 'done') AS share_max_tokens
FROM v_outcomes
GROUP BY experiment, condition
"""
