"""One job, start to end: claim → swarm state → plan → generate → judge → outcome → update → release next.

The runner holds the injected clients (Postgres sessions, swarm store, generator, broker app) and does the
I/O; every decision (route, prompt, stops, seeds, success, the outcome row) is a pure function of
`planning.py`. Each step that touches a service rides out short outages (`queue.retry`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from swarmq.benchmarks.base import UNJUDGED, Benchmark, Issue, Score, judged
from swarmq.benchmarks.registry import get_benchmark
from swarmq.errors import GenerationError, ServiceUnavailable, first_line
from swarmq.model.base import Generation, Generator
from swarmq.queue import jobs
from swarmq.queue.dispatch import release_next
from swarmq.queue.retry import with_retry
from swarmq.settings import DEFAULTS
from swarmq.store.db import autocommit_connections
from swarmq.store.outcomes import AppliedMark
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.sync import ExperimentInfo, StreamSync, update_for
from swarmq.worker.planning import JobPlan, Verdict, judge, outcome_record, plan_job
from swarmq.worker.shutdown import WorkerExit, hard_exit
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
    """One job in flight on this worker: its watch, and whether its outcome is written. Kept per job, since a
    worker with ``--slots K`` runs K jobs at once, one per Celery thread."""

    job_id: int
    started: float
    watch: JobWatch | None = None
    finished: bool = False


def job_line(job_id: int, status: str, condition: str, replicate: int, instance: str, agent: int, verdict: Verdict,
             seconds: float) -> str:  # fmt: skip
    """One finished job, as a worker prints it: what ran, how it ended, and what it cost."""
    ended = f"error: {verdict.error}" if verdict.error else ("success" if verdict.success else "failure")
    return (f"job {job_id} {status}: {condition}/r{replicate} {instance} agent {agent}: {ended}, "
            f"{verdict.gen.completion_tokens} tokens, {seconds:.1f} s")  # fmt: skip


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
        self.outage_seconds, self.max_attempts, self.stuck_seconds = outage_seconds, max_attempts, stuck_seconds
        self.jobs_done = 0
        self._lock = threading.Lock()
        self._runs: dict[int, _Run] = {}
        self._tokens = 0
        self._gen_seconds = 0.0

    def mean_tokens_per_second(self) -> float:
        return self._tokens / self._gen_seconds if self._gen_seconds > 0 else 0.0

    def running(self) -> dict[int, float]:
        """Job id → start time (epoch seconds) of every job this worker runs now."""
        with self._lock:
            return {r.job_id: r.started for r in self._runs.values()}

    @property
    def current_job(self) -> int | None:
        """The oldest running job (the only one with one slot)."""
        jobs = self.running()
        return min(jobs, key=lambda j: jobs[j]) if jobs else None

    @property
    def job_started(self) -> float | None:
        jobs = self.running()
        return min(jobs.values()) if jobs else None

    def run(self, job_id: int) -> str:
        """Process one delivery of a job. Returns done, failed or dropped (someone else has or had it)."""
        owner = self.identity.owner

        def claim() -> jobs.Claimed | None:
            with self._direct() as session:
                return jobs.claim(session, job_id, owner, self.lease_seconds, self.max_attempts)

        job = self._retry(claim, "claim")
        if job is None:
            log.info("job=%s dropped: not queued (leased elsewhere or finished)", job_id)
            return "dropped"
        run = _Run(job_id, time.time())
        with self._lock:
            self._runs[job_id] = run
        try:
            with JobWatch(lambda: self._renew(run), self.heartbeat_seconds, lambda why: self._stuck(job, why),
                          stuck_seconds=self.stuck_seconds) as w:  # fmt: skip
                run.watch = w
                return self._run_claimed(job, run)
        except (ServiceUnavailable, WorkerExit):
            raise  # the worker exits; the lease expires (or was given back) and another worker takes the job
        except LeaseLost as exc:
            log.warning("job=%s lease lost (%s): this run's result is dropped", job_id, exc)
            return "dropped"
        except (Exception, SystemExit, KeyboardInterrupt, JobTimedOut) as exc:  # JobTimedOut: one landing late
            # A bug, an unexpected library error, or code that tried to end the process (SystemExit from a
            # generator or scorer): fail the job now, with the reason, rather than let its lease expire and
            # re-run it until max_attempts reports a misleading "worker died". Only a real shutdown stops us.
            log.exception("job=%s failed", job_id)
            reason = f"{type(exc).__name__}: {first_line(exc)}"
            self._retry(lambda: self._fail(job, reason), "fail job")
            return "failed"
        finally:
            with self._lock:
                self._runs.pop(job_id, None)

    def _check_lease(self, run: _Run, step: str) -> None:
        if run.watch is not None and run.watch.lost:
            raise LeaseLost(f"noticed before {step}")

    def _stuck(self, job: jobs.Claimed, why: str) -> None:
        """Called by the job watch when the main thread cannot be interrupted (stuck in native code): the job
        fails with the reason, its stream moves on, and the worker ends so that its supervisor restarts it."""
        try:
            self._fail(job, why)
        finally:
            hard_exit(1, f"swarmq: error: worker {self.identity.worker}: job {job.id}: {why}; exiting")

    def _fail(self, job: jobs.Claimed, reason: str) -> None:
        with self.sessions() as session:
            jobs.fail(session, job.id, self.identity.owner, reason)
            info = self.sync.experiment(session, job.experiment_id)
        self._release_next(info)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return with_retry(fn, what=what, deadline_seconds=self.outage_seconds)

    def _renew(self, run: _Run) -> bool:
        if run.finished:  # the outcome is written: there is no lease left to renew
            return True
        with self.sessions() as session:
            return jobs.renew(session, run.job_id, self.identity.owner, self.lease_seconds)

    def _experiment(self, job: jobs.Claimed) -> ExperimentInfo:
        """The job's experiment (a query only the first time: `StreamSync.experiment` caches it)."""
        with self.sessions() as session:
            return self.sync.experiment(session, job.experiment_id)

    def _run_claimed(self, job: jobs.Claimed, run: _Run) -> str:
        started = time.perf_counter()
        info = self._retry(lambda: self._experiment(job), "load experiment")
        issue = Issue(job.instance_id, job.problem, job.task_type, job.category, job.repo, job.data)
        config, bench = info.config, get_benchmark(info.config.dataset.benchmark)
        stream = info.stream(job.condition, job.replicate)
        state = self._retry(lambda: self.sync.state(stream, config, job.id, unapplied=job.unapplied), "swarm state")
        model = self.generator.info
        plan = plan_job(bench, config, job.condition, job.replicate, job.position, issue, state, model)
        self._check_lease(run, "generation")
        verdict = self._generate_and_judge(run, bench, plan, issue, info)
        self._check_lease(run, "writing the outcome")
        record = outcome_record(plan, verdict, model, issue, config, worker=self.identity.worker,
                                gpu_index=self.identity.gpu_index, gpu_uuid=self.identity.gpu_uuid,
                                job_seconds=time.perf_counter() - started)  # fmt: skip
        status = "failed" if verdict.error else "done"

        def finish() -> bool:
            with self._direct() as session:
                return jobs.finish(session, job.id, self.identity.owner, record, status=status, error=verdict.error)

        if not self._retry(finish, "write outcome"):
            raise LeaseLost("the job was no longer ours when its outcome was written")
        run.finished = True
        update = update_for(job.id, plan.decision.agent_id, issue, verdict.gen.text, config, job.condition,
                            success=verdict.success, judged=judged(record["score_status"]),
                            chat=plan.prompt.messages is not None)  # fmt: skip
        applied = self._retry(lambda: self.sync.apply(stream, config, update, mark=False), "swarm update")
        self._release_next(info, applied)
        with self._lock:
            self.jobs_done += 1
            self._tokens += verdict.gen.completion_tokens
            self._gen_seconds += verdict.gen.generation_seconds
        line = job_line(job.id, status, job.condition, job.replicate, issue.instance_id, plan.decision.agent_id,
                        verdict, time.perf_counter() - started)  # fmt: skip
        if self.say is not None:
            self.say(line)
        log.info(line)
        return status

    def _generate_and_judge(self, run: _Run, bench: Benchmark, plan: JobPlan, issue: Issue,
                            info: ExperimentInfo) -> Verdict:  # fmt: skip
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

    def _release_next(self, info: ExperimentInfo, applied: AppliedMark | None = None) -> None:
        """The experiment's next jobs, with the applied-mark of this job's swarm update when there is one."""
        self._retry(lambda: release_next(self._direct, self.app, info.id, info.config, relaxed=True, applied=applied),
                    "release")  # fmt: skip
