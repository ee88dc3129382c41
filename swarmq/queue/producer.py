"""The producer: one experiment file → one experiment row, its issues, one job per
(condition, replicate, issue), published to the model's queue.

Publish order interleaves conditions (issue-major, then replicate, then condition), so a run stopped half way
is still a fair comparison. Enqueueing the same name again resumes: only jobs without an outcome go out again.
Strict streams publish one job at a time; the worker that finishes a job releases the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from swarmq import keys
from swarmq.benchmarks.base import Issue
from swarmq.errors import ConfigError, ExperimentConflict
from swarmq.experiment.config import ExperimentConfig
from swarmq.experiment.plan import batches, design_warnings, job_count, plan_jobs, replicate_orders
from swarmq.queue import broker, jobs
from swarmq.store.schema import Experiment, Job, Outcome
from swarmq.store.schema import Issue as IssueRow
from swarmq.swarm.state import Stream

INSERT_ROWS = 10_000
"""Job rows per INSERT: the plan is streamed, so memory stays flat however many jobs an experiment has."""


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
) -> EnqueueResult:
    say = progress or (lambda _m: None)
    key = keys.model_key(config.model.path)
    total = job_count(len(issues), len(config.conditions), config.replicates)
    if total > config.max_jobs:
        raise ConfigError(
            f"{config.name}: {len(issues)} issues × {len(config.conditions)} conditions × {config.replicates} "
            f"replicates = {total} jobs, above max_jobs ({config.max_jobs}); set max_jobs in the file if you mean it"
        )
    for warning in design_warnings({n: c.router for n, c in config.conditions.items()}, {i.task_type for i in issues}):
        say(f"warning: {warning}")
    with sessions() as session:
        # One producer per experiment name at a time; the lock ends with the transaction.
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": keys.experiment_lock(config.name)})
        existing = session.scalar(select(Experiment).where(Experiment.name == config.name))
        if existing is not None:
            if existing.config_hash != config.config_hash():
                raise ExperimentConflict(
                    f"experiment {config.name!r} exists with a different configuration; "
                    "use another --name (or the original file) to resume"
                )
            _check_rule(session, existing, config)
            # Operational guards (timeout, max_jobs) are not the experiment's identity: a resume may change them.
            existing.config = config.canonical_json()
            session.commit()
            return _resume(sessions, app, existing, config, say)
        exp = Experiment(
            name=config.name,
            config=config.canonical_json(),
            config_hash=config.config_hash(),
            benchmark=config.dataset.benchmark,
            model_key=key,
        )
        session.add(exp)
        session.flush()
        issue_ids = _insert_issues(session, exp.id, issues)
        limits = {name: c.in_flight_limit for name, c in config.conditions.items()}
        say(f"writing {total} jobs")
        orders = replicate_orders(
            len(issues), config.replicates, config.seed, config.dataset.shuffle == "per_replicate"
        )
        plan = plan_jobs(issues, list(config.conditions), config.replicates, limits, orders)
        for rows in batches(plan, INSERT_ROWS):
            for r in rows:
                r["experiment_id"] = exp.id
                r["issue_id"] = issue_ids[r["instance_id"]]
            session.execute(insert(Job), rows)
        session.execute(text("UPDATE jobs SET published_at = now() WHERE experiment_id = :e AND status = 'queued'"),
                        {"e": exp.id})  # fmt: skip
        session.commit()
        queued = jobs.queued_ids(session, exp.id)
    say(f"publishing {len(queued)} jobs to queue {keys.queue_name(key)}")
    published = broker.publish(app, ((job_id, key) for job_id in queued))
    return EnqueueResult(config.name, total, published, resumed=False)


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
    used = set(session.scalars(select(Outcome.success_rule).join(Job).where(Job.experiment_id == exp.id).distinct()))
    if used - {rule}:
        raise ExperimentConflict(
            f"experiment {exp.name!r} was judged by success rule {', '.join(sorted(used - {rule}))}, and would now be "
            f"judged by {rule}; enqueue it under another --name to compare, or set success.rule to match"
        )


def _resume(
    sessions: sessionmaker[Session],
    app: Celery,
    exp: Experiment,
    config: ExperimentConfig,
    say: Callable[[str], None],
) -> EnqueueResult:
    """Publish again every job without an outcome. Jobs that failed without one (poison jobs) get a fresh
    set of attempts; queued jobs are re-sent in case the broker lost them (a second delivery is dropped)."""
    with sessions() as session:
        jobs.reset_failed(session, exp.id)
        for name, cond in config.conditions.items():
            for replicate in range(config.replicates):
                jobs.release(session, Stream(exp.id, exp.name, name, replicate), cond.in_flight_limit)
        counts: dict[str, int] = dict(
            session.execute(
                text("SELECT status, count(*) FROM jobs WHERE experiment_id = :e GROUP BY status"), {"e": exp.id}
            ).all()
        )
        queued = jobs.queued_ids(session, exp.id)
    total = sum(counts.values())
    say(f"resuming {exp.name}: {counts.get('done', 0)} of {total} jobs done; publishing {len(queued)}")
    published = broker.publish(app, ((job_id, exp.model_key) for job_id in queued))
    return EnqueueResult(exp.name, total, published, resumed=True, done=int(counts.get("done", 0)))
