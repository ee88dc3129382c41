"""Carrying out a message's end (`plan.EndPlan`): the I/O half of the runner's decide-then-execute split.
In order: the outcome rows in one statement, then, from what was written (`EndPlan.settle`), the failures,
the give-backs, the swarm updates, one release per experiment carrying the updates' applied-marks, and the
reports. Each step rides out short outages (`queue.retry`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from celery import Celery
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from swarmq.errors import first_line
from swarmq.queue import jobs
from swarmq.queue.dispatch import release_next
from swarmq.queue.retry import with_retry
from swarmq.store.outcomes import AppliedMark
from swarmq.streams.sync import ExperimentInfo, StreamSync
from swarmq.worker.plan import EndPlan, Failure, Report
from swarmq.worker.shutdown import give_back

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class MessageEnd:
    sessions: sessionmaker[Session]
    direct: Callable[[], Connection]
    """Autocommit connections: each job-path statement is a transaction by itself (`queue.jobs`)."""
    app: Celery
    sync: StreamSync
    owner: str
    outage_seconds: float
    report: Callable[[Report], None]

    def execute(self, plan: EndPlan, closed: set[int], status: dict[int, str]) -> None:
        """Carry out ``plan``, adding to ``closed`` each job whose row or failure is written as it goes (so
        that an error part-way leaves them known) and setting each job's ``status``."""
        if plan.finish:
            written, refused = self.write(plan.finish)
            closed |= written
            plan = plan.settle(written, refused)
        status.update(plan.status)
        for line in plan.lines:
            log.warning(line)
        for failure in plan.fail:
            self.retry(partial(self._fail, failure), "fail job")
            closed.add(failure.job_id)
        for job_id in plan.give_back:
            give_back(self.sessions, self.app, job_id, self.owner, self.outage_seconds)
        marks: dict[int, list[AppliedMark]] = {}
        for u in plan.updates:
            apply = partial(self.sync.apply, u.stream, u.config, u.update, mark=False)
            marks.setdefault(u.experiment_id, []).append(self.retry(apply, "swarm update"))
        for experiment_id in plan.releases:
            self._release_next(experiment_id, marks.get(experiment_id, []))
        for report in plan.reports:
            self.report(report)

    def write(self, rows: Sequence[jobs.Finished]) -> tuple[set[int], dict[int, str]]:
        """Write the outcome rows in one statement: the jobs closed, and the reason of each row Postgres
        refused. Should that statement fail for good (not an outage: a value Postgres refuses, say a NUL in a
        completion), each row is written alone: one job's bad row does not fail its message."""
        try:
            return self.retry(partial(self._finish, rows), "write outcome"), {}
        except DBAPIError as exc:
            if len(rows) == 1:
                log.exception("job=%s: its outcome could not be written", rows[0].job_id)
                return set(), {rows[0].job_id: _reason(exc)}
            ids = ",".join(str(f.job_id) for f in rows)
            log.warning(
                "job(s)=%s: the outcomes could not be written together; each alone", ids, exc_info=True
            )
        closed: set[int] = set()
        refused: dict[int, str] = {}
        for row in rows:
            more, why = self.write([row])
            closed |= more
            refused |= why
        return closed, refused

    def experiment(self, experiment_id: int) -> ExperimentInfo:
        """The experiment (a query only the first time: `StreamSync.experiment` caches it)."""
        with self.sessions() as session:
            return self.sync.experiment(session, experiment_id)

    def retry(self, fn: Callable[[], T], what: str, sleep: Callable[[float], None] | None = None) -> T:
        """``fn``, riding out an outage; ``sleep`` waits between tries (a job's `Cancel.sleep` ends early)."""
        if sleep is None:
            return with_retry(fn, what=what, deadline_seconds=self.outage_seconds)
        return with_retry(fn, what=what, deadline_seconds=self.outage_seconds, sleep=sleep)

    def _finish(self, rows: Sequence[jobs.Finished]) -> set[int]:
        with self.direct() as session:
            return jobs.finish_many(session, self.owner, rows)

    def _fail(self, failure: Failure) -> None:
        with self.sessions() as session:
            jobs.fail(session, failure.job_id, self.owner, failure.reason)

    def _release_next(self, experiment_id: int, applied: Sequence[AppliedMark]) -> None:
        """The experiment's next jobs, with the applied-marks of this message's swarm updates."""
        info = self.retry(partial(self.experiment, experiment_id), "load experiment")
        self.retry(
            lambda: release_next(self.direct, self.app, info.id, info.config, relaxed=True, applied=applied),
            "release",
        )


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"
