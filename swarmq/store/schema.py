"""Postgres tables (SQLAlchemy 2 typed ORM). Postgres is the source of truth; Redis and the broker are not.

The migrations in ``migrations/`` create exactly these tables (plus SQL views for psql users).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from swarmq.states import IN_FLIGHT, INITIAL, OPEN, ExperimentState, JobStatus, sql_list
from swarmq.store.counters import CELL_COUNTERS


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, list[Any]: JSONB}


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint(f"state IN {sql_list(ExperimentState)}", name="experiments_state_check"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(String(64))
    benchmark: Mapped[str] = mapped_column(String(32))
    model_key: Mapped[str] = mapped_column(String(200))
    """Broker queue of the experiment's first model (derived from the GGUF file name); each job has its own
    (`Job.model_key`)."""
    state: Mapped[str] = mapped_column(String(16), server_default=ExperimentState.ACTIVE.value)
    """An `ExperimentState`; changed only by `queue.lifecycle` (pause, resume, cancel)."""
    dataset: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The dataset as read at enqueue: source, resolved revision, and a fingerprint of the rows used."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("experiment_id", "instance_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(Text)
    task_type: Mapped[str] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(64))
    repo: Mapped[str | None] = mapped_column(Text)
    problem: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("experiment_id", "condition", "replicate", "instance_id", "sample"),
        UniqueConstraint("experiment_id", "condition", "replicate", "position", "sample"),
        CheckConstraint(f"status IN {sql_list(JobStatus)}", name="jobs_status_check"),
        CheckConstraint("sample >= 0", name="jobs_sample_check"),
        Index("ix_jobs_experiment_status", "experiment_id", "status"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index(
            "ix_jobs_pending_stream",
            "experiment_id",
            "condition",
            "replicate",
            postgresql_where=text(f"status = '{JobStatus.PENDING.value}'"),
        ),
        Index(
            "ix_jobs_open_position",
            "experiment_id",
            "position",
            postgresql_where=text(f"status IN {sql_list(OPEN)}"),
        ),
        Index(
            "ix_jobs_active_stream",
            "experiment_id",
            "condition",
            "replicate",
            postgresql_where=text(f"status IN {sql_list(IN_FLIGHT)}"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    condition: Mapped[str] = mapped_column(String(64))
    replicate: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    """Order of the job inside its stream (experiment, condition, replicate): its issue's place, shared by the
    issue's samples."""
    sample: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    """Which of the cell's ``generation.samples`` this job is. Sample 0 is the job a one-sample run has: the
    one that feeds the swarm and that the results tables count; the others only observe (pass@k)."""
    model_key: Mapped[str] = mapped_column(String(200))
    """Broker queue of the model this job runs on (its condition's model)."""
    seq: Mapped[int] = mapped_column(Integer)
    """Global publish order: conditions interleaved so that a partial run stays a fair comparison."""
    status: Mapped[str] = mapped_column(String(16), default=INITIAL.value)
    """A `states.JobStatus`, moved only as `states.TRANSITIONS` says (`queue.jobs`)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Outcome(Base):
    __tablename__ = "outcomes"
    __table_args__ = (
        Index("ix_outcomes_unapplied", "job_id", postgresql_where=text("NOT update_applied")),
        Index("ix_outcomes_unfolded", "id", postgresql_where=text("NOT folded")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    """Unique: exactly one outcome per job is a database constraint, not only code."""
    completion: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    load_seconds: Mapped[float | None] = mapped_column(Float)
    prompt_cached_tokens: Mapped[int | None] = mapped_column(Integer)
    """Prompt tokens taken from the model's prefix cache (0 on a miss); None: recorded before the cache."""
    prompt_eval_tokens: Mapped[int | None] = mapped_column(Integer)
    """Prompt tokens the model evaluated for this job: ``prompt_tokens`` less the cached ones."""
    prompt_seconds: Mapped[float | None] = mapped_column(Float)
    """Time to evaluate the ``prompt_eval_tokens``."""
    generation_seconds: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    slots: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Sequences the worker decoded together (`worker --slots`); 1 = one at a time."""
    mean_batch_size: Mapped[float | None] = mapped_column(Float)
    """Sequences that shared a decode step with this job's, on average (itself included)."""
    job_seconds: Mapped[float | None] = mapped_column(Float)
    """Wall time from claim to outcome (routing, prompt, generation, scoring)."""
    worker: Mapped[str] = mapped_column(Text)
    gpu_index: Mapped[int | None] = mapped_column(Integer)
    """The physical (NVML) index of the worker's GPU, whatever CUDA_VISIBLE_DEVICES it was started under."""
    gpu_uuid: Mapped[str | None] = mapped_column(String(64))
    """The GPU's UUID: unique where indices are not (each container numbers its own GPUs from 0)."""
    model_name: Mapped[str] = mapped_column(Text)
    model_sha256: Mapped[str] = mapped_column(String(64))
    llama_cpp_version: Mapped[str] = mapped_column(String(32))
    prompt: Mapped[str] = mapped_column(Text)
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    chat: Mapped[bool] = mapped_column(default=False)
    """True when the prompt was sent as chat messages through the GGUF's chat template."""
    sampling: Mapped[dict[str, Any]]
    """max_tokens, temperature, top_p, seed, stop strings and end-of-generation token ids used."""
    error: Mapped[str | None] = mapped_column(Text)
    # The swarm: which agent produced it, from which state.
    agent_id: Mapped[int | None] = mapped_column(Integer)
    """None for a failure outcome (the job failed before or without a known routing decision)."""
    task_type: Mapped[str] = mapped_column(String(32))
    state_version: Mapped[int] = mapped_column(Integer, default=0)
    staleness: Mapped[int] = mapped_column(Integer, default=0)
    """Updates applied to the stream between this job's routing and its own update (relaxed streams)."""
    example_ids: Mapped[list[Any]]
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """What the router chose from: per-agent probabilities (random, affinity) or scores (greedy, ucb)."""
    update_applied: Mapped[bool] = mapped_column(default=False)
    folded: Mapped[bool] = mapped_column(server_default=text("false"))
    """Counted into the results aggregates (`store.aggregates.fold`); written false, by the database's
    default, so that the job path's outcome INSERT never names it."""
    applied_version: Mapped[int | None] = mapped_column(Integer)
    """The stream's state version this outcome's update produced in Redis: the order a rebuild replays, so a
    rebuilt relaxed stream equals the live one (commit order can differ from the order Redis applied)."""
    # Scoring.
    success: Mapped[bool] = mapped_column(default=False)
    success_rule: Mapped[str] = mapped_column(String(16))
    score_status: Mapped[str | None] = mapped_column(String(16))
    score_detail: Mapped[dict[str, Any]]
    scoring_seconds: Mapped[float | None] = mapped_column(Float)
    resolved: Mapped[bool | None] = mapped_column()
    """SWE-bench harness verdict, set by `swarmq import-eval`."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Results aggregates: kept by the server-side SQL of `store/sql` (``swarmq_agg_outcomes`` says what each table
# counts) and read by `store.aggregates`.


def _experiment_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)


def _counter() -> Mapped[int]:
    return mapped_column(BigInteger, server_default="0")


class AggCell(Base):
    """Per (experiment, condition, replicate, issue task type, outcome agent; -1: none) counters: one column
    per `counters.CELL_COUNTERS` entry, in its order."""

    __table__ = Table(
        "agg_cells",
        Base.metadata,
        Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True),
        Column("condition", String(64), primary_key=True),
        Column("replicate", Integer, primary_key=True),
        Column("task_type", String(32), primary_key=True),
        Column("agent", Integer, primary_key=True),
        *(
            Column(c.name, Numeric if c.numeric else BigInteger, nullable=False, server_default="0")
            for c in CELL_COUNTERS
        ),
    )


class AggSeconds(Base):
    """Histogram of job_seconds per (experiment, condition, replicate, agent), in the buckets of
    ``swarmq_agg_bucket`` (`store.histograms.BUCKETS_PER_OCTAVE`)."""

    __tablename__ = "agg_seconds"

    experiment_id: Mapped[int] = _experiment_fk()
    condition: Mapped[str] = mapped_column(String(64), primary_key=True)
    replicate: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = _counter()


class AggPair(Base):
    """Per (experiment, replicate, issue): which conditions have a judged outcome and a success (bitmasks)."""

    __tablename__ = "agg_pairs"

    experiment_id: Mapped[int] = _experiment_fk()
    replicate: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(Text, primary_key=True)
    task_type: Mapped[str | None] = mapped_column(String(32))
    judged: Mapped[int] = _counter()
    succeeded: Mapped[int] = _counter()
    agents: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")


class AggIssue(Base):
    """Per (experiment, condition, issue): judged outcomes and successes, all and in the matched set."""

    __tablename__ = "agg_issues"

    experiment_id: Mapped[int] = _experiment_fk()
    condition: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(Text, primary_key=True)
    judged: Mapped[int] = _counter()
    successes: Mapped[int] = _counter()
    matched: Mapped[int] = _counter()
    matched_successes: Mapped[int] = _counter()


class AggIssuePair(Base):
    """Per (experiment, condition a < b, issue): replicates judged in both, and the summed a − b success."""

    __tablename__ = "agg_issue_pairs"

    experiment_id: Mapped[int] = _experiment_fk()
    a: Mapped[str] = mapped_column(String(64), primary_key=True)
    b: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(Text, primary_key=True)
    pairs: Mapped[int] = _counter()
    diff: Mapped[int] = _counter()
