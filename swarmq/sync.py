"""Keeping a stream's Redis state in step with Postgres, the source of truth.

Before routing: finish updates a dead worker left half-done (outcome written, Redis not updated), and rebuild
the state from outcomes if Redis lost it. Both are idempotent, so any worker (or the reaper) may do them.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from swarmq import store
from swarmq.benchmarks.base import Issue
from swarmq.config import ConditionConfig, ExperimentConfig
from swarmq.prompts import Example, example_problem
from swarmq.schema import Experiment, Job, Outcome
from swarmq.schema import Issue as IssueRow
from swarmq.scorers.swebench import extract_diff
from swarmq.swarm import StreamKey, StreamState, SwarmStore, Update, state_from_updates

log = logging.getLogger(__name__)


def solution_text(benchmark: str, completion: str) -> str:
    """What a success adds to an agent's buffer: the function body, or the extracted diff."""
    if benchmark == "swebench":
        return extract_diff(completion) or completion
    return completion


def issue_of(row: IssueRow) -> Issue:
    return Issue(row.instance_id, row.problem, row.task_type, row.category, row.repo, row.data)


class StreamSync:
    def __init__(self, sessions: sessionmaker[Session], swarm: SwarmStore) -> None:
        self.sessions, self.swarm = sessions, swarm
        self._configs: dict[int, tuple[str, ExperimentConfig]] = {}

    def experiment(self, session: Session, experiment_id: int) -> tuple[str, ExperimentConfig]:
        """Name and configuration of an experiment (cached: both are immutable once enqueued)."""
        if experiment_id not in self._configs:
            exp = session.get(Experiment, experiment_id)
            assert exp is not None
            self._configs[experiment_id] = (exp.name, ExperimentConfig.model_validate(exp.config))
        return self._configs[experiment_id]

    def state(self, ref: store.StreamRef, key: StreamKey, cond: ConditionConfig, config: ExperimentConfig,
               job_id: int) -> StreamState:  # fmt: skip
        """Finish updates a dead worker left half-done, then read-and-reserve; rebuild if Redis lost it."""
        self.complete_pending(ref, key, cond, config)
        for _ in range(3):
            state = self.swarm.snapshot(key, cond.agents, job_id)
            if state is not None:
                return state
            self.rebuild(ref, key, cond, config)
        raise RuntimeError(f"stream {key} state vanished three times in a row")

    def complete_stream(self, experiment_id: int, condition: str, replicate: int) -> None:
        """The reaper's entry: finish a stream's half-applied updates (a worker died after its outcome write)."""
        with self.sessions() as session:
            name, config = self.experiment(session, experiment_id)
        ref = store.StreamRef(experiment_id, condition, replicate)
        key = StreamKey(name, condition, replicate, experiment_id)
        self.complete_pending(ref, key, config.conditions[condition], config)

    def complete_pending(self, ref: store.StreamRef, key: StreamKey, cond: ConditionConfig,
                         config: ExperimentConfig) -> None:  # fmt: skip
        with self.sessions() as session:
            if not store.has_unapplied(session, ref):
                return
            pending = store.stream_outcomes(session, ref, unapplied_only=True)
            if not pending:
                return
            issues = self._issues(session, [j.issue_id for j, _ in pending])
        for job, outcome in pending:
            self.apply(ref, key, cond, config, self._update_of(job, outcome, issues[job.issue_id], cond, config))

    def apply(self, ref: store.StreamRef, key: StreamKey, cond: ConditionConfig, config: ExperimentConfig,
               update: Update) -> None:  # fmt: skip
        result = self.swarm.apply(key, update, cond.max_examples)
        if result.status == "missing":
            self.rebuild(ref, key, cond, config)  # the rebuild replays this outcome too: it is in Postgres
            result = self.swarm.apply(key, update, cond.max_examples)
        with self.sessions() as session:
            store.mark_applied(session, update.job_id, result.staleness if result.status == "applied" else None)

    def rebuild(self, ref: store.StreamRef, key: StreamKey, cond: ConditionConfig, config: ExperimentConfig) -> bool:
        """Reconstruct a stream's Redis state from its outcomes in Postgres (the source of truth)."""
        with self.sessions() as session:
            pairs = store.stream_outcomes(session, ref)
            issues = self._issues(session, [j.issue_id for j, _ in pairs])
        updates = [self._update_of(j, o, issues[j.issue_id], cond, config) for j, o in pairs]
        state, applied = state_from_updates(updates, cond.agents, cond.max_examples)
        restored = self.swarm.restore(key, cond.agents, state, applied)
        if restored and updates:
            log.warning("stream=%s state rebuilt from %d outcomes in Postgres", key, len(updates))
        return restored

    @staticmethod
    def _issues(session: Session, ids: list[int]) -> dict[int, IssueRow]:
        if not ids:
            return {}
        return {r.id: r for r in session.scalars(select(IssueRow).where(IssueRow.id.in_(set(ids))))}

    @staticmethod
    def _update_of(
        job: Job, outcome: Outcome, row: IssueRow, cond: ConditionConfig, config: ExperimentConfig
    ) -> Update:
        benchmark = config.dataset.benchmark
        example = None
        if outcome.success and cond.accumulate:
            example = Example(str(job.id), example_problem(benchmark, issue_of(row)),
                              solution_text(benchmark, outcome.completion), row.task_type)  # fmt: skip
        return Update(job.id, outcome.agent_id, outcome.task_type, outcome.success, example)
