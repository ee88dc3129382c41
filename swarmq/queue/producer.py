"""The producer: one experiment file → one experiment row, its issues, one job per
(condition, replicate, issue), published to the model's queue.

Every job starts pending; releases (`queue.jobs.release`) queue them in publish order (issue-major, then
replicate, then condition) within each stream's in-flight limit and the experiment's position window, so a
run stopped half way is still a fair comparison; the worker that finishes a job releases the next ones.
Enqueueing the same name again resumes: only jobs without an outcome go out again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from swarmq import keys
from swarmq.benchmarks.base import Issue
from swarmq.errors import ConfigError, ExperimentConflict
from swarmq.experiment.config import ExperimentConfig
from swarmq.experiment.dataset import DatasetRecord, fingerprint
from swarmq.experiment.identity import differences
from swarmq.experiment.plan import design_warnings, job_count, plan_jobs, replicate_orders
from swarmq.queue import dispatch
from swarmq.states import INITIAL, JobStatus
from swarmq.store.schema import Experiment, Job, Outcome
from swarmq.store.schema import Issue as IssueRow

JOB_COLUMNS = (
    "experiment_id",
    "issue_id",
    "condition",
    "replicate",
    "instance_id",
    "position",
    "sample",
    "seq",
    "status",
    "attempts",
    "model_key",
)
"""The columns the producer writes of a new job; the others keep the table's defaults."""


@dataclass(frozen=True)
class EnqueueResult:
    experiment: str
    jobs: int
    published: int
    resumed: bool
    done: int = 0


def enqueue(
    sessions: sessionmaker[Session],
    app: Celery,
    config: ExperimentConfig,
    issues: Sequence[Issue],
    progress: Callable[[str], None] | None = None,
    record: DatasetRecord | None = None,
) -> EnqueueResult:
    """``record`` says what the issues were read from (`experiment.dataset.load_dataset`); without one, the
    experiment records their fingerprint only."""
    say = progress or (lambda _m: None)
    record = record or DatasetRecord(config.dataset.source, None, fingerprint(issues), len(issues))
    key = keys.model_key(config.model.path)
    samples = config.generation.samples
    total = job_count(len(issues), len(config.conditions), config.replicates, samples)
    if total > config.max_jobs:
        per = f" × {samples} samples" if samples > 1 else ""
        raise ConfigError(
            f"{config.name}: {len(issues)} issues × {len(config.conditions)} conditions × "
            f"{config.replicates} replicates{per} = {total} jobs, above max_jobs ({config.max_jobs}); "
            "set max_jobs in the file if you mean it"
        )
    for warning in design_warnings(
        {n: c.router for n, c in config.conditions.items()}, {i.task_type for i in issues}
    ):
        say(f"warning: {warning}")
    with sessions() as session:
        # One producer per experiment name at a time; the lock ends with the transaction.
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": keys.experiment_lock(config.name)}
        )
        existing = session.scalar(select(Experiment).where(Experiment.name == config.name))
        if existing is not None:
            if existing.config_hash != config.config_hash():
                changed = differences(ExperimentConfig.stored(existing.config), config)
                raise ExperimentConflict(
                    f"experiment {config.name!r} exists with a different configuration "
                    f"({', '.join(changed) or 'its identity'} differ{'' if len(changed) > 1 else 's'}); "
                    "use another --name (or the original file) to resume"
                )
            _check_rule(session, existing, config)
            used = (existing.dataset or {}).get("fingerprint")
            if used and used != record.fingerprint:
                say(
                    f"warning: {config.name}: the issues read now differ from those it was enqueued with "
                    f"(fingerprint {record.fingerprint[:12]} vs {used[:12]}); it goes on with the stored ones"
                )
            # Operational guards (timeout, max_jobs) are not the experiment's identity: a resume may change
            # them.
            existing.config = config.canonical_json()
            session.commit()
            return _resume(sessions, app, existing, config, say)
        exp = Experiment(
            name=config.name,
            config=config.canonical_json(),
            config_hash=config.config_hash(),
            benchmark=config.dataset.benchmark,
            model_key=key,
            dataset=record.to_json(),
        )
        session.add(exp)
        session.flush()
        issue_ids = _insert_issues(session, exp.id, issues)
        say(f"writing {total} jobs")
        orders = replicate_orders(
            len(issues), config.replicates, config.seed, config.dataset.shuffle == "per_replicate"
        )
        plan = plan_jobs(issues, list(config.conditions), config.replicates, orders, samples)
        queues = {name: keys.model_key(config.model_for(name).path) for name in config.conditions}
        copy_jobs(
            session,
            (
                (
                    exp.id,
                    issue_ids[r["instance_id"]],
                    r["condition"],
                    r["replicate"],
                    r["instance_id"],
                    r["position"],
                    r["sample"],
                    r["seq"],
                    INITIAL,
                    0,
                    queues[r["condition"]],
                )
                for r in plan
            ),
        )
        session.commit()
        _analyze(session)
        queued = dispatch.next_jobs(session, exp.id, config)
    names = ", ".join(keys.queue_name(k) for k in sorted({k for _, k in queued}))
    say(f"publishing {len(queued)} jobs to {names or 'no queue'}")
    published = dispatch.publish(app, queued, config)
    return EnqueueResult(config.name, total, published, resumed=False)


def _analyze(session: Session) -> None:
    """Refresh the planner's statistics of the tables a bulk write just grew. Workers keep their plans for the
    job path (psycopg's prepared statements, `swarmq_release` and the aggregate triggers) for as long as
    their connection lives; planned on statistics from before the write (or none: a fresh database),
    they scan an experiment's every job on every release, and a job's cost grows with the experiment.
    Autovacuum would analyze the table only a minute or more later."""
    session.execute(text("ANALYZE jobs, issues"))
    session.commit()


def copy_jobs(session: Session, rows: Iterable[Sequence[Any]]) -> int:
    """Write job rows (values in `JOB_COLUMNS` order) with one COPY in the session's transaction; returns how
    many.

    One statement whatever the count: an executemany sends one INSERT per row, and each fires the jobs table's
    statement trigger (the aggregates of migration 0008) once. The rows are streamed, so memory stays flat
    however many jobs an experiment has."""
    driver = session.connection().connection.driver_connection  # psycopg's connection, in this transaction
    assert driver is not None  # a checked-out connection always has one
    cursor = driver.cursor()
    n = 0
    with cursor, cursor.copy(f"COPY jobs ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _insert_issues(session: Session, experiment_id: int, issues: Sequence[Issue]) -> dict[str, int]:
    rows = [
        {
            "experiment_id": experiment_id,
            "instance_id": i.instance_id,
            "task_type": i.task_type,
            "category": i.category,
            "repo": i.repo,
            "problem": i.problem,
            "data": i.data,
        }
        for i in issues
    ]
    result = session.execute(insert(IssueRow).returning(IssueRow.instance_id, IssueRow.id), rows)
    return {iid: pk for iid, pk in result.all()}


def _check_rule(session: Session, exp: Experiment, config: ExperimentConfig) -> None:
    """Refuse to resume an experiment whose outcomes were judged by another rule than this code's (SWE-bench's
    ``scorer`` meant ``valid_diff`` before ``applies`` existed): one experiment, one definition of success."""
    rule = config.effective_rule()
    used = set(
        session.scalars(select(Outcome.success_rule).join(Job).where(Job.experiment_id == exp.id).distinct())
    )
    if used - {rule}:
        raise ExperimentConflict(
            f"experiment {exp.name!r} was judged by success rule {', '.join(sorted(used - {rule}))}, "
            f"and would now be judged by {rule}; enqueue it under another --name to compare, "
            "or set success.rule to match"
        )


def _resume(
    sessions: sessionmaker[Session],
    app: Celery,
    exp: Experiment,
    config: ExperimentConfig,
    say: Callable[[str], None],
) -> EnqueueResult:
    """Publish again every job without an outcome; queued jobs are re-sent in case the broker lost them (a
    second delivery is dropped). Failed jobs keep their failure outcome: running them again now would fill
    their strict streams out of order."""
    with sessions() as session:
        queued = dispatch.next_jobs(session, exp.id, config, every_queued=True)
        counts: dict[str, int] = dict(
            session.execute(
                select(Job.status, func.count()).where(Job.experiment_id == exp.id).group_by(Job.status)
            ).all()
        )
    total = sum(counts.values())
    done = int(counts.get(JobStatus.DONE, 0))
    say(f"resuming {exp.name}: {done} of {total} jobs done; publishing {len(queued)}")
    published = dispatch.publish(app, queued, config)
    return EnqueueResult(exp.name, total, published, resumed=True, done=done)
