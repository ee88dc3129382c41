"""A message's end, decided purely from its jobs' attempts (`attempt`): which outcome rows to write, which
jobs to fail or give back, which swarm updates to apply, which experiments to release (once each, carrying
the updates' applied-marks), and what to log. The runner executes the plan.

Writing the rows is the one step whose result the rest depends on (a row is not closed when the job is no
longer ours; Postgres may refuse one row): `plan_end` plans as if every row closes, the runner writes them,
and `EndPlan.settle` turns what was written into the plan for the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from swarmq.benchmarks.base import judged
from swarmq.experiment.config import ExperimentConfig
from swarmq.queue import jobs
from swarmq.states import JobStatus
from swarmq.streams.updates import update_for
from swarmq.swarm.state import Stream, Update
from swarmq.worker.attempt import Attempt, Dropped, Failed, Judged, Pending, Running, Stuck
from swarmq.worker.cancel import CancelKind, Cause
from swarmq.worker.planning import Verdict

LOST_AT_WRITE = Cause(CancelKind.LEASE_LOST, "the job was no longer ours when its outcome was written")


@dataclass(frozen=True)
class Failure:
    job_id: int
    experiment_id: int
    reason: str


@dataclass(frozen=True)
class SwarmUpdate:
    """A written job's swarm update, applied in Redis; its applied-mark rides with its experiment's
    release."""

    job_id: int
    experiment_id: int
    stream: Stream
    config: ExperimentConfig
    update: Update


@dataclass(frozen=True)
class Report:
    """One written job, as the worker counts and prints it."""

    job_id: int
    line: str
    tokens: int
    generation_seconds: float


@dataclass(frozen=True)
class EndPlan:
    finish: tuple[jobs.Finished, ...] = ()
    """Outcome rows to write, in one statement."""
    fail: tuple[Failure, ...] = ()
    give_back: tuple[int, ...] = ()
    """Jobs to queue again (a stuck message's others: they did nothing wrong)."""
    updates: tuple[SwarmUpdate, ...] = ()
    releases: tuple[int, ...] = ()
    """Experiments whose next jobs to release, once each, after the updates."""
    reports: tuple[Report, ...] = ()
    lines: tuple[str, ...] = ()
    """Warnings to log: the jobs dropped, and why."""
    status: Mapping[int, str] = field(default_factory=dict)
    """Per claimed job: done, failed or dropped (someone else has or had it)."""
    experiment_of: Mapping[int, int] = field(default_factory=dict)
    """Job id → experiment id, for every claimed job."""
    released_anyway: frozenset[int] = frozenset()
    """Experiments released whatever the rows' fate (a failure, or a job closed before)."""

    def settle(self, closed: Collection[int], refused: Mapping[int, str]) -> EndPlan:
        """The plan once its rows are written: ``closed`` the jobs whose rows were written, ``refused`` the
        reason of each row Postgres would not store. A refused row's job fails with that reason; a row
        neither closed nor refused was no longer ours, and its job is dropped."""
        lost = {f.job_id for f in self.finish} - set(closed) - set(refused)
        fail = self.fail + tuple(Failure(j, self.experiment_of[j], refused[j]) for j in sorted(refused))
        kept = set(closed)
        status = {
            j: "failed" if j in refused else ("dropped" if j in lost else s) for j, s in self.status.items()
        }
        touched = self.released_anyway | {self.experiment_of[j] for j in kept | set(refused)}
        return replace(
            self,
            finish=(),
            fail=fail,
            updates=tuple(u for u in self.updates if u.job_id in kept),
            releases=tuple(e for e in self.releases if e in touched),
            reports=tuple(r for r in self.reports if r.job_id in kept),
            lines=self.lines + tuple(_dropped_line(j, LOST_AT_WRITE) for j in sorted(lost)),
            status=status,
        )


def plan_end(
    attempts: Sequence[Attempt], now: float, closed: Collection[int] = (), *, abandon: bool = False
) -> EndPlan:
    """The end of a message whose jobs' attempts are ``attempts`` (in message order), at ``now``
    (`time.perf_counter`). ``closed``: jobs whose rows or failures this message already wrote (an error
    part-way through its end); they are released with the rest, not written again.

    A stuck job abandons its message: it fails, the other jobs still open are given back, nothing is written.
    Otherwise each judged job's row is written (done, or failed with its generation error), each failed job
    fails, a dropped job is only logged, and a job never started (the worker is stopping) is left as it is.
    ``abandon``: the worker ends for another message's stuck job; this message is abandoned likewise."""
    stuck = abandon or any(isinstance(a.state, Stuck) for a in attempts)
    finish: list[jobs.Finished] = []
    fail: list[Failure] = []
    give_back: list[int] = []
    updates: list[SwarmUpdate] = []
    reports: list[Report] = []
    lines: list[str] = []
    status: dict[int, str] = {}
    experiment_of = {a.job.id: int(a.job.experiment_id) for a in attempts}
    touched = {experiment_of[a.job.id] for a in attempts if a.job.id in closed}
    for a in attempts:
        job_id, experiment_id, state = a.job.id, experiment_of[a.job.id], a.state
        if job_id in closed:
            continue
        match state:
            case Stuck(reason) | Failed(reason):
                fail.append(Failure(job_id, experiment_id, reason))
                status[job_id] = "failed"
            case Dropped(cause):
                lines.append(_dropped_line(job_id, cause))
                status[job_id] = "dropped"
            case Judged() if stuck:
                give_back.append(job_id)
                status[job_id] = "dropped"
            case Judged():
                verdict = state.verdict
                row_status = JobStatus.FAILED if verdict.error else JobStatus.DONE
                finish.append(jobs.Finished(job_id, state.record, row_status, verdict.error))
                updates.append(_update(a, state))
                reports.append(_report(a, state, row_status, now))
                status[job_id] = row_status
            case Pending() | Running():
                if stuck:
                    give_back.append(job_id)
                status[job_id] = "dropped"
    touched |= {f.experiment_id for f in fail}
    rows = {experiment_of[f.job_id] for f in finish}
    return EndPlan(
        finish=tuple(finish),
        fail=tuple(fail),
        give_back=tuple(give_back),
        updates=tuple(updates),
        releases=tuple(e for e in dict.fromkeys(experiment_of.values()) if e in touched | rows),
        reports=tuple(reports),
        lines=tuple(lines),
        status=status,
        experiment_of=experiment_of,
        released_anyway=frozenset(touched),
    )


def _update(a: Attempt, state: Judged) -> SwarmUpdate:
    job, info, verdict = a.job, state.info, state.verdict
    update = update_for(
        job.id,
        state.plan.decision.agent_id,
        state.issue,
        verdict.gen.text,
        info.config,
        job.condition,
        success=verdict.success,
        judged=judged(state.record["score_status"]),
        chat=state.plan.prompt.messages is not None,
        sample=job.sample,
    )
    return SwarmUpdate(job.id, info.id, info.stream(job.condition, job.replicate), info.config, update)


def _report(a: Attempt, state: Judged, status: str, now: float) -> Report:
    job, gen = a.job, state.verdict.gen
    line = job_line(
        job.id,
        status,
        job.condition,
        job.replicate,
        state.issue.instance_id + (f"#{job.sample}" if job.sample else ""),  # as Celery's task name says it
        state.plan.decision.agent_id,
        state.verdict,
        now - state.started,
    )
    return Report(job.id, line, gen.completion_tokens, gen.generation_seconds)


def _dropped_line(job_id: int, cause: Cause) -> str:
    return f"job={job_id} {cause.kind} ({cause.reason}): this run's result is dropped"


def job_line(
    job_id: int,
    status: str,
    condition: str,
    replicate: int,
    instance: str,
    agent: int,
    verdict: Verdict,
    seconds: float,
) -> str:
    """One finished job, as a worker prints it: what ran, how it ended, and what it cost."""
    ended = f"error: {verdict.error}" if verdict.error else ("success" if verdict.success else "failure")
    return (
        f"job {job_id} {status}: {condition}/r{replicate} {instance} agent {agent}: {ended}, "
        f"{verdict.gen.completion_tokens} tokens, {seconds:.1f} s"
    )
