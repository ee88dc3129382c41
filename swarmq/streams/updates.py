"""The swarm update a job makes, decided purely from its outcome: the worker applies it live, and the rebuild
replays it from Postgres, so both build it here."""

from __future__ import annotations

from swarmq.benchmarks.base import Issue, judged
from swarmq.benchmarks.registry import get_benchmark
from swarmq.experiment.config import ExperimentConfig
from swarmq.store.schema import Issue as IssueRow
from swarmq.store.schema import Job, Outcome
from swarmq.swarm.state import Update


def issue_of(row: IssueRow) -> Issue:
    return Issue(row.instance_id, row.problem, row.task_type, row.category, row.repo, row.data)


def update_for(
    job_id: int,
    agent_id: int,
    issue: Issue,
    completion: str,
    config: ExperimentConfig,
    condition: str,
    *,
    success: bool,
    judged: bool,
    chat: bool,
    sample: int,
) -> Update:
    """An attempt when the outcome was judged, and on a success with accumulation an example. Only sample 0
    feeds the swarm (`GenerationConfig.samples`): another sample's update counts nothing and only moves the
    stream's version on."""
    if sample != 0:
        return Update(job_id, agent_id, issue.task_type, False, None, judged=False)
    example = None
    if success and judged and config.conditions[condition].accumulate:
        bench = get_benchmark(config.dataset.benchmark)
        example = bench.example(str(job_id), issue, completion, chat=chat)
    return Update(job_id, agent_id, issue.task_type, success, example, judged)


def update_of(job: Job, outcome: Outcome, issue: Issue, config: ExperimentConfig) -> Update:
    """The update a recorded outcome made. A failure outcome (no agent: `store.outcomes.failure_record`)
    counts no attempt: it only moves the stream's version on, for the record."""
    if outcome.agent_id is None:
        return Update(job.id, 0, issue.task_type, False, None, judged=False)
    return update_for(
        job.id,
        outcome.agent_id,
        issue,
        outcome.completion,
        config,
        job.condition,
        success=outcome.success,
        judged=judged(outcome.score_status),
        chat=outcome.chat,
        sample=job.sample,
    )
