"""Keeping a stream's Redis state in step with Postgres, the source of truth.

Before routing: finish updates a dead worker left half-done (outcome written, Redis not updated), and rebuild
the state from outcomes if Redis lost it. Both are idempotent, so any worker (or the reaper) may do them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from swarmq.benchmarks.base import Issue
from swarmq.experiment.config import ConditionConfig, ExperimentConfig
from swarmq.store import outcomes
from swarmq.store.outcomes import AppliedMark
from swarmq.store.schema import Experiment
from swarmq.store.schema import Issue as IssueRow
from swarmq.streams.updates import issue_of, update_of
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.state import Stream, StreamState, Update, replay_plan, state_from_updates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentInfo:
    """What a worker needs of an experiment row; immutable once enqueued, so cached per process."""

    id: int
    name: str
    config: ExperimentConfig
    model_key: str

    def stream(self, condition: str, replicate: int) -> Stream:
        return Stream(self.id, self.name, condition, replicate)


def final_buffers(
    session: Session, experiment_id: int, config: ExperimentConfig
) -> dict[tuple[str, int], StreamState]:
    """Each stream's final state as far as its agents' buffers go, replayed from Postgres (the pure
    `state_from_updates` over the successes a buffer can still hold): what D is computed from, whatever Redis
    holds or lost. Attempt counts in these states are partial; read only the buffers."""
    capacity = max(c.max_examples for c in config.conditions.values())
    pairs = outcomes.latest_successes(session, experiment_id, capacity)
    issues = issues_by_id(session, [j.issue_id for j, _ in pairs])
    per_stream: dict[tuple[str, int], list[Update]] = {}
    for job, outcome in pairs:
        update = update_of(job, outcome, issues[job.issue_id], config)
        per_stream.setdefault((job.condition, job.replicate), []).append(update)
    out = {}
    for (condition, replicate), updates in per_stream.items():
        cond = config.conditions[condition]
        out[(condition, replicate)] = state_from_updates(updates, cond.agents, cond.max_examples)[0]
    return out


class StreamSync:
    def __init__(self, sessions: sessionmaker[Session], swarm: SwarmStore) -> None:
        self.sessions, self.swarm = sessions, swarm
        self._experiments: dict[int, ExperimentInfo] = {}

    def experiment(self, session: Session, experiment_id: int) -> ExperimentInfo:
        """Name, configuration and model queue of an experiment (cached: immutable once enqueued)."""
        if experiment_id not in self._experiments:
            exp = session.get(Experiment, experiment_id)
            if exp is None:
                raise ExperimentGone(f"experiment {experiment_id} was deleted")
            config = ExperimentConfig.stored(exp.config)
            self._experiments[experiment_id] = ExperimentInfo(exp.id, exp.name, config, exp.model_key)
        return self._experiments[experiment_id]

    def state(
        self, stream: Stream, config: ExperimentConfig, job_id: int, *, unapplied: bool = True
    ) -> StreamState:
        """Finish updates a dead worker left half-done (when the claim said the stream has some:
        ``unapplied``), then read-and-reserve; rebuild if Redis lost it."""
        cond = config.conditions[stream.condition]
        if unapplied:
            self.complete_pending(stream, config)
        for _ in range(3):
            state = self.swarm.snapshot(stream, cond.agents, job_id)
            if state is not None:
                return state
            self.rebuild(stream, config)
        raise RuntimeError(f"stream {stream} state vanished three times in a row")

    def complete_stream(self, experiment_id: int, condition: str, replicate: int) -> None:
        """The reaper's entry: finish a stream's half-applied updates (a worker died after its outcome
        write)."""
        with self.sessions() as session:
            info = self.experiment(session, experiment_id)
        self.complete_pending(info.stream(condition, replicate), info.config)

    def complete_pending(self, stream: Stream, config: ExperimentConfig) -> None:
        """Apply a stream's unapplied updates, in order. Called only for a stream known to hold some (the
        claim said so, or the reaper's sweep found it): no probe first."""
        with self.sessions() as session:
            pending = outcomes.stream_outcomes(session, stream, unapplied_only=True)
            issues = issues_by_id(session, [j.issue_id for j, _ in pending])
        for job, outcome in pending:
            self.apply(stream, config, update_of(job, outcome, issues[job.issue_id], config))

    def apply(
        self, stream: Stream, config: ExperimentConfig, update: Update, *, mark: bool = True
    ) -> AppliedMark:
        """Apply the update in Redis; record it in Postgres unless the caller writes the returned mark itself
        (``mark`` False: a worker's own job, whose mark rides with its release, `queue.jobs.release`)."""
        capacity = config.conditions[stream.condition].max_examples
        result = self.swarm.apply(stream, update, capacity)
        if result.status == "missing":
            self.rebuild(stream, config)  # the rebuild replays this outcome too: it is in Postgres
            result = self.swarm.apply(stream, update, capacity)
        if result.status == "missing":  # lost again between the rebuild and the apply: the next try rebuilds
            raise RuntimeError(f"stream {stream} state vanished while job {update.job_id} was applied")
        # A duplicate's version is the one its first apply produced (or the rebuild gave it): the mark is
        # the same whoever writes it, so a rebuild orders this update where Redis has it.
        done = AppliedMark(update.job_id, result.staleness, result.version)
        if mark:
            with self.sessions() as session:
                outcomes.mark_applied(session, done)
        return done

    def _exists(self, experiment_id: int) -> bool:
        with self.sessions() as session:
            return session.get(Experiment, experiment_id, populate_existing=True) is not None

    def replayed(self, stream: Stream, config: ExperimentConfig) -> tuple[StreamState, dict[int, int]]:
        """What a rebuild writes (read from Postgres, and from Redis only the versions of updates whose
        applied-mark has not landed yet): the state, and each applied job id with its version."""
        cond: ConditionConfig = config.conditions[stream.condition]
        with self.sessions() as session:
            pairs = outcomes.stream_outcomes(session, stream)
            issues = issues_by_id(session, [j.issue_id for j, _ in pairs])
        held = self.swarm.applied_versions(stream) if any(o.applied_version is None for _, o in pairs) else {}
        plan = replay_plan([o.applied_version or held.get(j.id) for j, o in pairs])
        updates = [update_of(pairs[i][0], pairs[i][1], issues[pairs[i][0].issue_id], config) for i, _ in plan]
        return state_from_updates(updates, cond.agents, cond.max_examples, [v for _, v in plan])

    def rebuild(self, stream: Stream, config: ExperimentConfig) -> bool:
        """Reconstruct a stream's Redis state from its outcomes in Postgres (the source of truth)."""
        state, applied = self.replayed(stream, config)
        agents = config.conditions[stream.condition].agents
        restored = self.swarm.restore(stream, agents, state, applied)
        if restored and not self._exists(stream.experiment_id):
            # `swarmq delete --force` removed the experiment while one of its jobs ran here, perhaps after
            # it removed the stream's keys: remove what this restore wrote again (the delete commits its rows
            # before it removes the keys, so one of the two always sees the other).
            self.swarm.purge(stream, agents)
            raise ExperimentGone(f"experiment {stream.experiment} was deleted")
        if restored and applied:
            log.warning("stream=%s state rebuilt from %d outcomes in Postgres", stream, len(applied))
        return restored


class ExperimentGone(RuntimeError):
    """The experiment of a job this worker runs was deleted (`swarmq delete --force`): the job is dropped."""


def issues_by_id(session: Session, ids: list[int]) -> dict[int, Issue]:
    """The issue rows of these ids, as benchmark issues."""
    if not ids:
        return {}
    rows = session.scalars(select(IssueRow).where(IssueRow.id.in_(set(ids))))
    return {r.id: issue_of(r) for r in rows}
