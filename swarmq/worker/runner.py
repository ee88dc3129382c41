"""One message, start to end: claim → (per job: swarm state → plan → generate → judge) → outcomes → updates →
release next. A message carries one job, or several (`queue.broker.publish`, ``jobs_per_message``): its
claim, outcome INSERT and release are one statement each whatever the count, and each job keeps its own
lease, deadline, verdict and error.

The runner holds the injected clients (Postgres sessions, swarm store, generator, broker app) and does the
I/O; every decision (route, prompt, stops, seeds, success, the outcome row) is a pure function of
`planning.py`. Each step that touches a service rides out short outages (`queue.retry`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from celery import Celery
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from swarmq.benchmarks.base import UNJUDGED, Benchmark, Issue, Score, judged
from swarmq.benchmarks.registry import get_benchmark
from swarmq.errors import GenerationError, ServiceUnavailable, first_line
from swarmq.model.base import Generation, Generator
from swarmq.queue import jobs
from swarmq.queue.dispatch import release_next
from swarmq.queue.retry import with_retry
from swarmq.settings import DEFAULTS
from swarmq.states import JobStatus
from swarmq.store.db import autocommit_connections
from swarmq.store.outcomes import AppliedMark
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.sync import ExperimentInfo, StreamSync, update_for
from swarmq.worker.planning import JobPlan, Verdict, judge, outcome_record, plan_job
from swarmq.worker.shutdown import WorkerExit, give_back, hard_exit
from swarmq.worker.watch import JobTimedOut, JobWatch

log = logging.getLogger(__name__)
T = TypeVar("T")
SCORING_BACKSTOP_SECONDS = 4000.0
"""Scorers bound themselves (sandbox wall time, git timeouts, an hour for a first clone); past this a scorer
is hung, and the job fails rather than hold its stream forever."""


@dataclass
class RunnerIdentity:
    worker: str
    """The worker's name (its Celery hostname), recorded with every outcome."""
    gpu_index: int | None
    gpu_uuid: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    """Unique to this process: two processes under one name never share a lease."""

    @property
    def owner(self) -> str:
        """What a lease is held by: the worker's name and this process's token."""
        return f"{self.worker}/{self.token}"


@dataclass
class _Run:
    """One message's jobs in flight on this worker: their watch, and which of them have their outcome written or
    lost their lease. Kept per message: a worker with ``--slots K`` runs K messages at once, one per Celery
    thread, and a message carries one job or several (`queue.broker.publish`)."""

    claimed: list[jobs.Claimed]
    started: float
    watch: JobWatch | None = None
    finished: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    current: jobs.Claimed | None = None
    """The job whose steps run now (what a stuck step is blamed on)."""

    def open(self) -> list[jobs.Claimed]:
        """The jobs whose outcome is not written and whose lease is not lost: what a renewal or a failure covers."""
        return [j for j in self.claimed if j.id not in self.finished and j.id not in self.lost]


@dataclass(frozen=True)
class _Ended:
    """A job that ran to its verdict, waiting for its message's outcomes to be written together."""

    job: jobs.Claimed
    info: ExperimentInfo
    issue: Issue
    plan: JobPlan
    verdict: Verdict
    record: dict[str, Any]
    started: float


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


class LeaseLost(Exception):
    """This worker no longer holds the job's lease (it expired, or the claim was lost): drop the work."""


class JobRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        swarm: SwarmStore,
        generator: Generator,
        app: Celery,
        identity: RunnerIdentity,
        *,
        lease_seconds: float,
        heartbeat_seconds: float,
        outage_seconds: float,
        max_attempts: int,
        stuck_seconds: float = DEFAULTS.stuck_seconds,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.sessions, self.generator, self.app = sessions, generator, app
        self._direct = autocommit_connections(sessions)
        """For the job path's statements, each a transaction by itself (`queue.jobs`): claim, finish, release."""
        self.say = say
        """Where one line per finished job goes (the worker prints them unless ``-q``)."""
        self.sync = StreamSync(sessions, swarm)
        self.identity = identity
        self.lease_seconds, self.heartbeat_seconds = lease_seconds, heartbeat_seconds
        self.outage_seconds, self.max_attempts, self.stuck_seconds = (
            outage_seconds,
            max_attempts,
            stuck_seconds,
        )
        self.jobs_done = 0
        self._lock = threading.Lock()
        self._runs: list[_Run] = []
        self._tokens = 0
        self._gen_seconds = 0.0

    def mean_tokens_per_second(self) -> float:
        return self._tokens / self._gen_seconds if self._gen_seconds > 0 else 0.0

    def running(self) -> dict[int, float]:
        """Job id → start time (epoch seconds) of every job this worker holds now (a message's jobs are held
        from their claim until its release)."""
        with self._lock:
            return {j.id: r.started for r in self._runs for j in r.claimed}

    def busy(self) -> int:
        """Messages in progress: the slots in use."""
        with self._lock:
            return len(self._runs)

    @property
    def current_job(self) -> int | None:
        """The oldest running job (the only one with one slot and one job per message)."""
        jobs = self.running()
        return min(jobs, key=lambda j: (jobs[j], j)) if jobs else None

    @property
    def job_started(self) -> float | None:
        jobs = self.running()
        return min(jobs.values()) if jobs else None

    def run(self, job_id: int) -> str:
        """Process one delivery of a job. Returns done, failed or dropped (someone else has or had it)."""
        return self.run_many([job_id])[0]

    def run_many(self, job_ids: Sequence[int]) -> list[str]:
        """Process one delivery of a message's jobs: claim them in one statement, run each to its verdict in
        turn, write their outcomes in one statement, apply their swarm updates, and release the next jobs with
        their applied-marks in one statement. Per job, in order: done, failed or dropped (someone else has or
        had it). A message of several jobs pays the per-message costs (Celery's delivery and ack, the claim,
        the outcome INSERT, the release) once."""
        owner = self.identity.owner

        def claim() -> list[jobs.Claimed]:
            with self._direct() as session:
                return jobs.claim_many(session, job_ids, owner, self.lease_seconds, self.max_attempts)

        claimed = self._retry(claim, "claim")
        status = dict.fromkeys(job_ids, "dropped")
        for job_id in sorted(set(job_ids) - {j.id for j in claimed}):
            log.info("job=%s dropped: not queued (leased elsewhere or finished)", job_id)
        if not claimed:
            return [status[j] for j in job_ids]
        run = _Run(list(claimed), time.time())
        with self._lock:
            self._runs.append(run)
        try:
            with JobWatch(
                lambda: self._renew(run),
                self.heartbeat_seconds,
                lambda why: self._stuck(run, why),
                stuck_seconds=self.stuck_seconds,
            ) as w:
                run.watch = w
                self._run_claimed(run, status)
        except (ServiceUnavailable, WorkerExit):
            raise  # the worker exits; the leases expire (or were given back) and another worker takes the jobs
        except (
            Exception,
            SystemExit,
            KeyboardInterrupt,
            JobTimedOut,
        ) as exc:  # JobTimedOut: one landing late
            # A bug or an unexpected library error while writing the message's outcomes or releasing: its jobs
            # not yet closed fail now, with the reason, rather than let their leases expire and re-run them
            # until max_attempts reports a misleading "worker died". Only a real shutdown stops us.
            log.exception("job(s)=%s failed", ",".join(str(j.id) for j in run.open()))
            failing = run.open()
            for job in failing:
                status[job.id] = self._fail_job(job, exc)  # each failure releases its stream's next jobs
            if not failing:  # every outcome was written before the error: the streams go on all the same
                for job in {j.experiment_id: j for j in run.claimed}.values():
                    self._release_next(self._retry(partial(self._experiment, job), "load experiment"))
        finally:
            with self._lock:
                self._runs.remove(run)
        return [status[j] for j in job_ids]

    def _check_lease(self, run: _Run, job: jobs.Claimed, step: str) -> None:
        if job.id in run.lost:
            raise LeaseLost(f"noticed before {step}")

    def _stuck(self, run: _Run, why: str) -> None:
        """Called by the job watch when the job thread cannot be interrupted (stuck in native code): the job
        that is stuck fails with the reason, its message's other open jobs are queued again (they did nothing
        wrong), and the worker ends so that its supervisor restarts it."""
        try:
            for job in run.open():
                if run.current is not None and job.id == run.current.id:
                    self._fail(job, why)
                else:
                    give_back(self.sessions, self.app, job.id, self.identity.owner, self.outage_seconds)
        finally:
            job_id = run.current.id if run.current is not None else ",".join(str(j.id) for j in run.claimed)
            hard_exit(1, f"swarmq: error: worker {self.identity.worker}: job {job_id}: {why}; exiting")

    def _fail_job(self, job: jobs.Claimed, exc: BaseException) -> str:
        """Fail a job on an unexpected error (its reason: the error's type and first line)."""
        reason = f"{type(exc).__name__}: {first_line(exc)}"
        self._retry(lambda: self._fail(job, reason), "fail job")
        return "failed"

    def _fail(self, job: jobs.Claimed, reason: str) -> None:
        with self.sessions() as session:
            jobs.fail(session, job.id, self.identity.owner, reason)
            info = self.sync.experiment(session, job.experiment_id)
        self._release_next(info)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return with_retry(fn, what=what, deadline_seconds=self.outage_seconds)

    def _renew(self, run: _Run) -> bool:
        """Extend the leases of the message's open jobs; a job found no longer ours is marked lost (its result
        is dropped). False only when every open job was lost."""
        open_ = [j.id for j in run.open()]
        if not open_:  # every outcome is written: there is no lease left to renew
            return True
        with self.sessions() as session:
            held = jobs.renew(session, open_, self.identity.owner, self.lease_seconds)
        run.lost.update(set(open_) - held)
        return bool(held)

    def _experiment(self, job: jobs.Claimed) -> ExperimentInfo:
        """The job's experiment (a query only the first time: `StreamSync.experiment` caches it)."""
        with self.sessions() as session:
            return self.sync.experiment(session, job.experiment_id)

    def _run_claimed(self, run: _Run, status: dict[int, str]) -> None:
        """Each job to its verdict in turn (a job's error fails that job only), then the message's end."""
        ended: list[_Ended] = []
        for job in run.claimed:
            run.current = job
            try:
                ended.append(self._run_job(run, job))
            except (ServiceUnavailable, WorkerExit):
                raise
            except LeaseLost as exc:
                log.warning("job=%s lease lost (%s): this run's result is dropped", job.id, exc)
                run.lost.add(job.id)
                status[job.id] = "dropped"
            except (Exception, SystemExit, KeyboardInterrupt, JobTimedOut) as exc:
                # A bug, an unexpected library error, or code that tried to end the process (SystemExit from a
                # generator or scorer): this job fails now, with the reason; the message's other jobs go on.
                log.exception("job=%s failed", job.id)
                status[job.id] = self._fail_job(job, exc)
                run.finished.add(job.id)
        run.current = None
        self._end(run, ended, status)

    def _run_job(self, run: _Run, job: jobs.Claimed) -> _Ended:
        """One claimed job, from its swarm state to its outcome row (not written yet)."""
        started = time.perf_counter()
        info = self._retry(lambda: self._experiment(job), "load experiment")
        issue = Issue(job.instance_id, job.problem, job.task_type, job.category, job.repo, job.data)
        config, bench = info.config, get_benchmark(info.config.dataset.benchmark)
        stream = info.stream(job.condition, job.replicate)
        state = self._retry(
            lambda: self.sync.state(stream, config, job.id, unapplied=job.unapplied), "swarm state"
        )
        model = self.generator.info
        plan = plan_job(bench, config, job.condition, job.replicate, job.position, issue, state, model)
        self._check_lease(run, job, "generation")
        verdict = self._generate_and_judge(run, bench, plan, issue, info)
        self._check_lease(run, job, "writing the outcome")
        record = outcome_record(
            plan,
            verdict,
            model,
            issue,
            config,
            worker=self.identity.worker,
            gpu_index=self.identity.gpu_index,
            gpu_uuid=self.identity.gpu_uuid,
            job_seconds=time.perf_counter() - started,
        )
        return _Ended(job, info, issue, plan, verdict, record, started)

    def _end(self, run: _Run, ended: list[_Ended], status: dict[int, str]) -> None:
        """The message's end: its outcomes in one statement, each job's swarm update, and one release per
        experiment carrying the applied-marks."""
        if not ended:
            return
        finished = [
            jobs.Finished(
                e.job.id, e.record, JobStatus.FAILED if e.verdict.error else JobStatus.DONE, e.verdict.error
            )
            for e in ended
        ]

        closed = self._finish(run, ended, finished, status)
        run.finished.update(closed)
        run.lost.update(
            f.job_id for f in finished if f.job_id not in closed and status.get(f.job_id) != "failed"
        )
        status.update(
            {f.job_id: f.status if f.job_id in closed else status.get(f.job_id, "dropped") for f in finished}
        )
        marks: dict[int, list[AppliedMark]] = {}
        infos: dict[int, ExperimentInfo] = {}
        for e in ended:
            if e.job.id not in closed:
                if e.job.id in run.lost:
                    log.warning(
                        "job=%s lease lost (the job was no longer ours when its outcome was written): "
                        "this run's result is dropped",
                        e.job.id,
                    )
                continue
            config, stream = e.info.config, e.info.stream(e.job.condition, e.job.replicate)
            update = update_for(
                e.job.id,
                e.plan.decision.agent_id,
                e.issue,
                e.verdict.gen.text,
                config,
                e.job.condition,
                success=e.verdict.success,
                judged=judged(e.record["score_status"]),
                chat=e.plan.prompt.messages is not None,
            )
            mark = self._retry(partial(self.sync.apply, stream, config, update, mark=False), "swarm update")
            marks.setdefault(e.info.id, []).append(mark)
            infos[e.info.id] = e.info
        for experiment_id, applied in marks.items():
            self._release_next(infos[experiment_id], applied)
        for e in ended:
            if e.job.id in closed:
                self._report(e, status[e.job.id])

    def _finish(
        self, run: _Run, ended: list[_Ended], finished: list[jobs.Finished], status: dict[int, str]
    ) -> set[int]:
        """Write the outcomes in one statement; the jobs closed. Should that statement fail for good (not an
        outage: a value Postgres refuses, say a NUL in a completion), each job is written alone, and a job whose
        own outcome cannot be written fails with the reason: one job's bad row does not fail its message."""

        def finish(rows: list[jobs.Finished]) -> set[int]:
            with self._direct() as session:
                return jobs.finish_many(session, self.identity.owner, rows)

        try:
            return self._retry(partial(finish, finished), "write outcome")
        except DBAPIError:
            if len(finished) == 1:
                raise
            log.warning(
                "job(s)=%s: the message's outcomes could not be written together; writing each alone",
                ",".join(str(f.job_id) for f in finished),
                exc_info=True,
            )
        closed: set[int] = set()
        for e, f in zip(ended, finished, strict=True):
            try:
                closed |= self._retry(partial(finish, [f]), "write outcome")
            except DBAPIError as exc:
                log.exception("job=%s: its outcome could not be written", f.job_id)
                status[f.job_id] = self._fail_job(e.job, exc)
                run.finished.add(f.job_id)
        return closed

    def _report(self, e: _Ended, status: str) -> None:
        with self._lock:
            self.jobs_done += 1
            self._tokens += e.verdict.gen.completion_tokens
            self._gen_seconds += e.verdict.gen.generation_seconds
        line = job_line(
            e.job.id,
            status,
            e.job.condition,
            e.job.replicate,
            e.issue.instance_id,
            e.plan.decision.agent_id,
            e.verdict,
            time.perf_counter() - e.started,
        )
        if self.say is not None:
            self.say(line)
        log.info(line)

    def _generate_and_judge(
        self, run: _Run, bench: Benchmark, plan: JobPlan, issue: Issue, info: ExperimentInfo
    ) -> Verdict:
        """A prompt the model cannot take (longer than n_ctx) or a generation past its deadline is this job's
        error outcome, not a crash. A scorer that hangs past its backstop is a scoring error (not judged)."""
        watch = run.watch
        assert watch is not None
        try:
            # The condition's own generation settings decided the request's deadline (`plan_job`).
            deadline = plan.request.deadline_seconds or info.config.generation.deadline_seconds
            with watch.deadline(deadline, "generation"):
                gen = self.generator.generate(plan.request)
        except (GenerationError, JobTimedOut) as exc:
            return Verdict(Generation("", "error", 0, 0, 0.0, 0.0), str(exc), False, None, 0.0)
        t_score = time.perf_counter()
        chat = plan.prompt.messages is not None
        try:
            with watch.deadline(SCORING_BACKSTOP_SECONDS, "scoring"):
                success, scored = judge(info.config.effective_rule(), bench, issue, gen.text, chat=chat)
        except JobTimedOut as exc:
            unjudged = Score(False, UNJUDGED, {"reason": str(exc)}, time.perf_counter() - t_score)
            return Verdict(gen, None, False, unjudged, unjudged.seconds)
        return Verdict(gen, None, success, scored, time.perf_counter() - t_score)

    def _release_next(self, info: ExperimentInfo, applied: Sequence[AppliedMark] = ()) -> None:
        """The experiment's next jobs, with the applied-marks of this message's swarm updates."""
        self._retry(
            lambda: release_next(self._direct, self.app, info.id, info.config, relaxed=True, applied=applied),
            "release",
        )
