"""One job, start to end: claim → swarm state → route → prompt → generate → score → outcome → update → release.

The runner holds the injected clients (Postgres sessions, swarm store, generator, broker app); it owns no
policy of its own: routing, prompts, stop strings and seeds are the pure functions it calls.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from swarmq import broker, store
from swarmq.benchmarks.base import Issue
from swarmq.config import ConditionConfig, ExperimentConfig
from swarmq.errors import GenerationError, ServiceUnavailable, first_line
from swarmq.model import Generation, GenerationRequest, Generator, stop_strings
from swarmq.prompts import Example, benchmark_stops, build_prompt, example_problem, select_examples
from swarmq.retry import with_retry
from swarmq.routing import route, stream_seed
from swarmq.schema import Experiment
from swarmq.schema import Issue as IssueRow
from swarmq.scorers import score as score_completion
from swarmq.scorers.base import Score
from swarmq.scorers.humaneval import completion_from_reply
from swarmq.swarm import StreamKey, SwarmStore, Update
from swarmq.sync import StreamSync, issue_of, solution_text

log = logging.getLogger(__name__)
T = TypeVar("T")


def job_seed(base: int, replicate: int, instance_id: str) -> int:
    """Sampling seed of a job: the same issue and replicate get the same seed in every condition
    (common random numbers make conditions comparable); fits llama.cpp's uint32 seed."""
    digest = hashlib.sha256(f"{base}/{replicate}/{instance_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def judge(rule: str, benchmark: str, issue: Issue, completion: str, chat: bool = False) -> tuple[bool, Score | None]:
    """Success by the configured rule. ``non_empty`` is the stand-in the study used before real scoring."""
    if rule == "non_empty":
        return bool(completion.strip()), None
    if chat and benchmark == "humaneval":
        completion = completion_from_reply(issue.data, completion)
    result = score_completion(benchmark, issue.data, completion)
    return result.success, result


@dataclass
class RunnerIdentity:
    worker: str
    gpu_index: int | None


class Heartbeat:
    """Renews a job's lease every ``interval`` seconds in a thread while the job runs."""

    def __init__(self, renew: Callable[[], bool], interval: float) -> None:
        self._renew, self._interval = renew, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swarmq-heartbeat", daemon=True)
        self.lost = False

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._renew():
                    self.lost = True
                    log.warning("lost the lease on the running job")
            except Exception as exc:  # a blip: the next beat retries; the lease is long enough
                log.warning("heartbeat failed: %s", exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


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
        outage_seconds: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        self.sessions, self.generator, self.app = sessions, generator, app
        self.sync = StreamSync(sessions, swarm)
        self.identity = identity
        self.lease_seconds, self.heartbeat_seconds = lease_seconds, heartbeat_seconds
        self.outage_seconds, self.max_attempts = outage_seconds, max_attempts
        self._finished = False
        self.jobs_done = 0
        self._issues: dict[int, Issue] = {}
        self.current_job: int | None = None
        self.job_started: float | None = None
        self._tokens = 0
        self._gen_seconds = 0.0

    def mean_tokens_per_second(self) -> float:
        return self._tokens / self._gen_seconds if self._gen_seconds > 0 else 0.0

    def run(self, job_id: int) -> str:
        """Process one delivery of a job. Returns done, failed or dropped (someone else has or had it)."""
        owner = self.identity.worker

        def claim() -> store.Claimed | None:
            with self.sessions() as session:
                return store.claim(session, job_id, owner, self.lease_seconds, self.max_attempts)

        job = self._retry(claim, "claim")
        if job is None:
            log.info("job=%s dropped: not queued (leased elsewhere or finished)", job_id)
            return "dropped"
        self.current_job, self.job_started, self._finished = job_id, time.time(), False
        try:
            with Heartbeat(lambda: self._renew(job_id), self.heartbeat_seconds):
                return self._run_claimed(job)
        except ServiceUnavailable:
            raise  # the worker exits; the lease expires and another worker takes the job
        except Exception as exc:
            # A bug or an unexpected library error: fail the job now, with the reason, rather than let its
            # lease expire and re-run it until max_attempts reports a misleading "worker died".
            log.exception("job=%s failed", job_id)
            reason = f"{type(exc).__name__}: {first_line(exc)}"
            self._retry(lambda: self._fail(job, reason), "fail job")
            return "failed"
        finally:
            self.current_job = self.job_started = None

    def _fail(self, job: store.Claimed, reason: str) -> None:
        with self.sessions() as session:
            store.fail(session, job.id, reason)
            _, config = self.sync.experiment(session, job.experiment_id)
        self.release_next(
            store.StreamRef(job.experiment_id, job.condition, job.replicate), config.conditions[job.condition]
        )

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return with_retry(fn, what=what, deadline_seconds=self.outage_seconds)

    def _renew(self, job_id: int) -> bool:
        if self._finished:  # the outcome is written: there is no lease left to renew
            return True
        with self.sessions() as session:
            return store.renew(session, job_id, self.identity.worker, self.lease_seconds)

    def _run_claimed(self, job: store.Claimed) -> str:
        started = time.perf_counter()

        def load() -> tuple[str, ExperimentConfig, Issue]:
            with self.sessions() as session:
                name, config = self.sync.experiment(session, job.experiment_id)
                if job.issue_id not in self._issues:  # immutable, and shared by every condition and replicate
                    row = session.get(IssueRow, job.issue_id)
                    assert row is not None
                    self._issues[job.issue_id] = issue_of(row)
                return name, config, self._issues[job.issue_id]

        name, config, issue = self._retry(load, "load job")
        cond = config.conditions[job.condition]
        ref = store.StreamRef(job.experiment_id, job.condition, job.replicate)
        key = StreamKey(name, job.condition, job.replicate, job.experiment_id)
        state = self._retry(lambda: self.sync.state(ref, key, cond, config, job.id), "swarm state")
        decision = route(
            cond.router,
            state.agents,
            issue.task_type,
            seed=stream_seed(config.seed, job.condition, job.replicate),
            position=job.position,
            temperature=cond.router_temperature,
            ucb_c=cond.ucb_c,
        )
        agent = decision.agent_id
        examples = select_examples(
            state.buffers[agent], issue.task_type, max_show=cond.max_show, type_filtered=cond.type_filtered
        )
        info = self.generator.info
        benchmark = config.dataset.benchmark
        prompt = build_prompt(benchmark, issue, examples, chat=info.chat_template, system=cond.system_prompt)
        gen_cfg = config.generation
        request = GenerationRequest(
            prompt=prompt.text,
            messages=prompt.messages,
            max_tokens=gen_cfg.max_tokens,
            temperature=gen_cfg.temperature,
            top_p=gen_cfg.top_p,
            seed=job_seed(gen_cfg.seed, job.replicate, issue.instance_id),
            stop=stop_strings(info.eog_texts, gen_cfg.stop, benchmark_stops(benchmark, info.chat_template)),
        )
        error: str | None = None
        try:
            gen = self.generator.generate(request)
        except GenerationError as exc:
            error = str(exc)
            gen = Generation("", "error", 0, 0, 0.0, 0.0)
        t_score = time.perf_counter()
        if error is None:
            success, scored = judge(config.success.rule, benchmark, issue, gen.text, chat=prompt.messages is not None)
        else:
            success, scored = False, None
        scoring_seconds = time.perf_counter() - t_score
        outcome = {
            "completion": gen.text,
            "finish_reason": gen.finish_reason,
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "load_seconds": info.load_seconds,
            "prompt_seconds": gen.prompt_seconds,
            "generation_seconds": gen.generation_seconds,
            "tokens_per_second": gen.tokens_per_second,
            "job_seconds": time.perf_counter() - started,
            "worker": self.identity.worker,
            "gpu_index": self.identity.gpu_index,
            "model_name": info.name,
            "model_sha256": info.sha256,
            "llama_cpp_version": info.llama_cpp_version,
            "prompt": prompt.text,
            "prompt_sha256": hashlib.sha256(prompt.text.encode()).hexdigest(),
            "chat": prompt.messages is not None,
            "sampling": {
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "seed": request.seed,
                "stop": list(request.stop),
                "eog_token_ids": list(info.eog_token_ids),
                "n_ctx": info.n_ctx,
            },
            "error": error,
            "agent_id": agent,
            "task_type": issue.task_type,
            "state_version": state.version,
            "example_ids": list(prompt.example_ids),
            "success": success,
            "success_rule": config.success.rule,
            "score_status": scored.status if scored else ("error" if error else None),
            "score_detail": _jsonable(scored.detail) if scored else {},
            "scoring_seconds": scoring_seconds,
        }
        status = "failed" if error else "done"

        def finish() -> bool:
            with self.sessions() as session:
                return store.finish(session, job.id, self.identity.worker, outcome, status=status, error=error)

        if not self._retry(finish, "write outcome"):
            log.warning("job=%s already had an outcome; this delivery is dropped", job.id)
            return "dropped"
        self._finished = True
        example = None
        if success and cond.accumulate:
            example = Example(str(job.id), example_problem(benchmark, issue), solution_text(benchmark, gen.text),
                              issue.task_type)  # fmt: skip
        update = Update(job.id, agent, issue.task_type, success, example)
        self._retry(lambda: self.sync.apply(ref, key, cond, config, update), "swarm update")
        self._retry(lambda: self.release_next(ref, cond), "release next job")
        self.jobs_done += 1
        self._tokens += gen.completion_tokens
        self._gen_seconds += gen.generation_seconds
        log.info("job=%s %s agent=%s success=%s tokens=%s", job.id, status, agent, success, gen.completion_tokens)
        return status

    # -- scheduling ----------------------------------------------------------------------------------

    def release_next(self, ref: store.StreamRef, cond: ConditionConfig) -> int:
        if cond.in_flight_limit is None:
            return 0  # unlimited streams never hold jobs back: nothing is pending
        with self.sessions() as session:
            ids = store.release_stream(session, ref, cond.in_flight_limit)
            if not ids:
                return 0
            exp = session.get(Experiment, ref.experiment_id)
            assert exp is not None
            key = exp.model_key
        return broker.publish(self.app, ((i, key) for i in ids))


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(detail, default=str))
