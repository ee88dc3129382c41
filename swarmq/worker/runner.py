"""One message, start to end: claim → (per job: swarm state → plan → generate → judge) → the message's end:
outcomes → failures → swarm updates → release next. A message carries one job, or several
(`queue.broker.publish`, ``jobs_per_message``): its claim, outcome INSERT and release are one statement each
whatever the count, and each job keeps its own lease, deadline, verdict and error.

The runner holds the injected clients (Postgres sessions, swarm store, generator, broker app) and does the
I/O. It records each job's attempt as a typed state (`attempt`); every decision is a pure function: the
job's route, prompt and outcome row (`planning`), how an exception ends a step or a job (`attempt`), and the
message's end (`plan`). Each step that touches a service rides out short outages (`queue.retry`), and stops
waiting once its job is cancelled (`cancel`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from swarmq.benchmarks.base import UNJUDGED, Benchmark, Issue, Score
from swarmq.benchmarks.registry import get_benchmark
from swarmq.benchmarks.sandbox import cancelling
from swarmq.errors import first_line
from swarmq.model.base import Generation, Generator
from swarmq.queue import broker, jobs
from swarmq.settings import DEFAULTS
from swarmq.store.db import autocommit_connections
from swarmq.streams.sync import ExperimentGone, ExperimentInfo, StreamSync
from swarmq.swarm.redis import SwarmStore
from swarmq.worker.attempt import (
    RUNNING,
    Attempt,
    Failed,
    Judged,
    Message,
    State,
    Stuck,
    job_end,
    step_error,
)
from swarmq.worker.cancel import Cancel, CancelKind
from swarmq.worker.ending import MessageEnd
from swarmq.worker.plan import Report, plan_end
from swarmq.worker.planning import JobPlan, Verdict, judge, outcome_record, plan_job
from swarmq.worker.shutdown import hard_exit
from swarmq.worker.watch import JobWatch

log = logging.getLogger(__name__)
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


class JobRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        swarm: SwarmStore,
        generator: Generator,
        app: Celery,
        identity: RunnerIdentity,
        *,
        model_key: str,
        lease_seconds: float,
        heartbeat_seconds: float,
        outage_seconds: float,
        max_attempts: int,
        stuck_seconds: float = DEFAULTS.stuck_seconds,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.sessions, self.generator, self.app = sessions, generator, app
        self._direct = autocommit_connections(sessions)
        """For the job path's statements, each a transaction by itself (`queue.jobs`): claim, finish,
        release."""
        self.say = say
        """Where one line per finished job goes (the worker prints them unless ``-q``)."""
        self.sync = StreamSync(sessions, swarm)
        self.identity = identity
        self.model_key = model_key
        """The model this worker serves (`keys.model_key`): it claims no other model's job."""
        self.lease_seconds, self.heartbeat_seconds = lease_seconds, heartbeat_seconds
        self.outage_seconds, self.max_attempts = outage_seconds, max_attempts
        self.stuck_seconds = stuck_seconds
        self.end = MessageEnd(
            sessions, self._direct, app, self.sync, identity.owner, outage_seconds, self._report
        )
        """Carries out each message's end (`plan.plan_end`)."""
        self.jobs_done = 0
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._tokens = 0
        self._gen_seconds = 0.0

    def mean_tokens_per_second(self) -> float:
        return self._tokens / self._gen_seconds if self._gen_seconds > 0 else 0.0

    def running(self) -> dict[int, float]:
        """Job id → start time (epoch seconds) of every job this worker holds now (a message's jobs are held
        from their claim until its end)."""
        with self._lock:
            return {j.id: m.started for m in self._messages for j in m.claimed}

    def busy(self) -> int:
        """Messages in progress: the slots in use."""
        with self._lock:
            return len(self._messages)

    def cancel_all(self, reason: str) -> None:
        """Cancel every running job: the worker is shutting down and gave them back (`shutdown`)."""
        with self._lock:
            cancels = [c for m in self._messages for c in m.cancels.values()]
        for cancel in cancels:
            cancel.set(CancelKind.SHUTDOWN, reason)

    def run(self, job_id: int) -> str:
        """Process one delivery of a job. Returns done, failed or dropped (someone else has or had it)."""
        return self.run_many([job_id])[0]

    def run_many(self, job_ids: Sequence[int]) -> list[str]:
        """Process one delivery of a message's jobs: claim them in one statement, run each to its verdict in
        turn, then end the message (`plan.plan_end`): outcomes in one statement, failures, swarm updates, and
        one release per experiment carrying the applied-marks. Per job, in order: done, failed or dropped
        (someone else has or had it)."""
        owner = self.identity.owner

        def claim() -> list[jobs.Claimed]:
            with self._direct() as session:
                return jobs.claim_many(
                    session, job_ids, owner, self.lease_seconds, self.max_attempts, model_key=self.model_key
                )

        claimed = self.end.retry(claim, "claim")
        if not claimed:
            self._refused(job_ids)
            return ["dropped"] * len(job_ids)
        for job_id in sorted(set(job_ids) - {j.id for j in claimed}):
            log.info("job=%s dropped: not queued (leased elsewhere or finished)", job_id)
        msg = Message.of(list(claimed))
        with self._lock:
            self._messages.append(msg)
        try:
            with JobWatch(
                lambda: self._renew(msg),
                self.heartbeat_seconds,
                lambda why: self._stuck(msg, why),
                stuck_seconds=self.stuck_seconds,
            ) as watch:
                msg.watch = watch
                for job in msg.claimed:
                    msg.states[job.id] = self._attempt(msg, job)
                self.end.execute(plan_end(msg.attempts(), time.perf_counter()), msg.closed, msg.status)
        except BaseException as exc:
            if job_end(exc, None) is None:
                raise  # the worker exits: the leases expire or were given back; another worker runs the jobs
            self._end_after_error(msg, exc)
        finally:
            with self._lock:
                self._messages.remove(msg)
        return [msg.status.get(j, "dropped") for j in job_ids]

    def _refused(self, job_ids: Sequence[int]) -> None:
        """A message none of whose jobs could be claimed: one line saying why, and its real jobs that this
        worker must not run (another model's, or sent in a message no release makes) back to their own
        queues, one a message."""

        def why() -> jobs.Refusal:
            with self._direct() as session:
                return jobs.refusal(session, job_ids, self.model_key)

        refused = self.end.retry(why, "claim")
        ids = ",".join(map(str, job_ids[:10])) + (f",... ({len(job_ids)} jobs)" if len(job_ids) > 10 else "")
        if refused.republish:
            self.end.retry(lambda: broker.publish(self.app, refused.republish), "publish")
        again = f"; {len(refused.republish)} republished to their own queue" if refused.republish else ""
        # A second delivery of a job that ran is routine; anything else came from outside swarmq's releases.
        level = logging.INFO if refused.routine else logging.WARNING
        log.log(level, "job(s)=%s dropped: %s%s", ids, refused.reason, again)

    def _end_after_error(self, msg: Message, exc: BaseException) -> None:
        """An error outside any job's steps (a bug or a library error in the message's end): the jobs not yet
        closed fail now, with the reason, rather than let their leases expire and re-run them until
        max_attempts reports a misleading "worker died"."""
        end = job_end(exc, None)
        failing = msg.fail_open(end) if isinstance(end, Failed) else []
        log.exception("job(s)=%s failed", ",".join(map(str, failing)))
        self.end.execute(plan_end(msg.attempts(), time.perf_counter(), msg.closed), msg.closed, msg.status)

    def _attempt(self, msg: Message, job: jobs.Claimed) -> State:
        """Run one job to its verdict; how it ended, as its attempt's state (`attempt.job_end`)."""
        cancel = msg.cancels[job.id]
        msg.states[job.id] = RUNNING
        try:
            return self._judge(msg, job, cancel)
        except BaseException as exc:
            end = job_end(exc, cancel.cause())
            if end is None:
                raise
            if isinstance(end, Failed):
                log.exception("job=%s failed", job.id)
            return end

    def _judge(self, msg: Message, job: jobs.Claimed, cancel: Cancel) -> Judged:
        """One claimed job, from its swarm state to its outcome row (written at the message's end)."""
        started = time.perf_counter()
        cancel.check()  # the worker may be stopping, or the lease lost, while earlier jobs ran
        try:
            info = self.end.retry(
                partial(self.end.experiment, job.experiment_id), "load experiment", cancel.sleep
            )
            issue = Issue(job.instance_id, job.problem, job.task_type, job.category, job.repo, job.data)
            config, bench = info.config, get_benchmark(info.config.dataset.benchmark)
            stream = info.stream(job.condition, job.replicate)
            state = self.end.retry(
                lambda: self.sync.state(stream, config, job.id, unapplied=job.unapplied),
                "swarm state",
                cancel.sleep,
            )
        except ExperimentGone as exc:  # deleted with --force while the job ran: its result has no home
            cancel.set(CancelKind.LEASE_LOST, str(exc))
            cancel.check()
            raise
        model = self.generator.info
        plan = plan_job(
            bench, config, job.condition, job.replicate, job.position, issue, state, model, sample=job.sample
        )
        cancel.check()
        assert msg.watch is not None
        verdict = self._generate_and_judge(msg.watch, cancel, bench, plan, issue, info)
        cancel.check()
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
        return Judged(info, issue, plan, verdict, record, started)

    def _generate_and_judge(
        self,
        watch: JobWatch,
        cancel: Cancel,
        bench: Benchmark,
        plan: JobPlan,
        issue: Issue,
        info: ExperimentInfo,
    ) -> Verdict:
        """A prompt the model cannot take (longer than n_ctx) or a generation past its deadline is this job's
        error outcome, not a crash. A scorer past its backstop is a scoring error (not judged)."""
        # The condition's own generation settings decided the request's deadline (`plan_job`).
        deadline = plan.request.deadline_seconds or info.config.generation.deadline_seconds
        step = cancel.child()
        try:
            with watch.deadline(deadline, "generation", step):
                gen = self.generator.generate(replace(plan.request, cancel=step))
        except BaseException as exc:
            if (reason := step_error(exc, step.cause(), "generation")) is None:
                raise
            return Verdict(Generation("", "error", 0, 0, 0.0, 0.0), reason, False, None, 0.0)
        t_score = time.perf_counter()
        chat = plan.prompt.messages is not None
        step = cancel.child()
        try:
            with watch.deadline(SCORING_BACKSTOP_SECONDS, "scoring", step), cancelling(step):
                success, scored = judge(info.config.effective_rule(), bench, issue, gen.text, chat=chat)
        except BaseException as exc:
            if (reason := step_error(exc, step.cause(), "scoring")) is None:
                raise
            unjudged = Score(False, UNJUDGED, {"reason": reason}, time.perf_counter() - t_score)
            return Verdict(gen, None, False, unjudged, unjudged.seconds)
        return Verdict(gen, None, success, scored, time.perf_counter() - t_score)

    def _stuck(self, msg: Message, why: str) -> None:
        """Called by the job watch when a job's thread cannot be interrupted (stuck in native code): the stuck
        job fails with the reason, its message's other open jobs are queued again (they did nothing wrong),
        and the worker ends so that its supervisor restarts it. The other slots' messages end with it, each
        job's record true: one that is stuck as well (`JobWatch.overdue`) fails with its own reason, the rest
        go back to the queue. None is left to die with the worker and be failed, attempts later, as "worker
        died"."""
        attempts = [Attempt(a.job, Stuck(why) if a.state is RUNNING else a.state) for a in msg.attempts()]
        stuck = [a.job.id for a in attempts if isinstance(a.state, Stuck)] or [j.id for j in msg.claimed]
        with self._lock:
            others = [m for m in self._messages if m is not msg]
        try:
            self.end.execute(plan_end(attempts, time.perf_counter(), msg.closed), msg.closed, msg.status)
            for other in others:
                stuck += self._abandon(other)
        finally:
            job_ids = ",".join(map(str, stuck))
            hard_exit(1, f"swarmq: error: worker {self.identity.worker}: job {job_ids}: {why}; exiting")

    def _abandon(self, msg: Message) -> list[int]:
        """End another slot's message as the worker exits for a stuck job: its running job fails if it is
        stuck too, its other open jobs go back to the queue. The jobs failed as stuck."""
        why = msg.watch.overdue() if msg.watch is not None else None
        attempts = [
            Attempt(a.job, Stuck(why) if why and a.state is RUNNING else a.state) for a in msg.attempts()
        ]
        try:
            plan = plan_end(attempts, time.perf_counter(), msg.closed, abandon=True)
            self.end.execute(plan, msg.closed, msg.status)
        except Exception as exc:  # the exit goes on: these jobs' leases expire as a dead worker's would
            log.warning("job(s)=%s: not given back: %s", ",".join(map(str, msg.open())), first_line(exc))
        return [a.job.id for a in attempts if isinstance(a.state, Stuck)]

    def _renew(self, msg: Message) -> bool:
        """Extend the leases of the message's open jobs; a job found no longer ours is cancelled (its result
        is dropped). False only when every open job was lost."""
        open_ = msg.open()
        if not open_:  # every job is closed or cancelled: there is no lease left to renew
            return True
        with self.sessions() as session:
            held = jobs.renew(session, open_, self.identity.owner, self.lease_seconds)
        for job_id in set(open_) - held:
            msg.cancels[job_id].set(CancelKind.LEASE_LOST, "a renewal found its lease taken or expired")
        return bool(held)

    def _report(self, report: Report) -> None:
        with self._lock:
            self.jobs_done += 1
            self._tokens += report.tokens
            self._gen_seconds += report.generation_seconds
        if self.say is not None:
            self.say(report.line)
        log.info(report.line)
