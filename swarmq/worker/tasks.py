"""What Celery, `celery inspect` and Flower see of a message: its name, and how it ended.

A message is named after its job (``exp3:baseline/r0:django__django-11099``, ``…#2`` for its sample 2;
Celery's shadow name) when the worker receives it, from one primary-key read, so that Flower's task list and
`inspect active` say what runs. A message whose job failed ends as a Celery FAILURE carrying the reason; a
written job (scored, or an error outcome of the model) is a SUCCESS whose result is the worker's line for it,
verdict included. These are for people watching: Postgres stays the record, and a name that cannot be read
leaves the plain task name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from swarmq.queue.messages import BadMessage, job_ids

log = logging.getLogger(__name__)

_NAME_SQL = text(
    "SELECT e.name, j.condition, j.replicate, j.instance_id, j.sample FROM jobs j "
    "JOIN experiments e ON e.id = j.experiment_id WHERE j.id = :id"
)
_ERRORS_SQL = text("SELECT id, error FROM jobs WHERE id = ANY(:ids) ORDER BY id")


class JobFailed(Exception):
    """A message's job failed (recorded in Postgres with the reason): Celery's FAILURE, for Flower."""


def task_name(
    experiment: str, condition: str, replicate: int, instance: str, others: int = 0, sample: int = 0
) -> str:
    """``exp3:baseline/r0:django__django-11099``; ``...#2`` for the issue's sample 2 (sample 0, the job a
    one-sample run has, keeps the plain name); ``... (+3)`` for a message that carries 3 more jobs."""
    name = f"{experiment}:{condition}/r{replicate}:{instance}" + (f"#{sample}" if sample else "")
    return f"{name} (+{others})" if others else name


def shown_job_ids(args: Sequence[Any]) -> list[int]:
    """The job ids a message's arguments name (``[id]`` or ``[[id, ...]]``, `broker.message_args`), by the
    queue's own rule (`messages.job_ids`); [] for anything else, which the task then drops."""
    try:
        return job_ids(args[0])
    except (IndexError, KeyError, TypeError, BadMessage):
        return []


class TaskNames:
    """The name of a received message, read from Postgres (None: keep Celery's task name)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def __call__(self, args: Sequence[Any]) -> str | None:
        ids = shown_job_ids(args)
        if not ids:
            return None
        try:
            with self.sessions() as session:
                row = session.execute(_NAME_SQL, {"id": ids[0]}).first()
        except Exception as exc:  # a display name never holds up a message; the claim reports outages
            log.debug("job=%s no task name: %s", ids[0], exc)
            return None
        if row is None:
            return None
        return task_name(row[0], row[1], int(row[2]), row[3], len(ids) - 1, sample=int(row[4]))


class Lines:
    """The per-job lines the runner reports (`JobRunner.say`), kept per thread: each slot's message collects
    its own, for its task's result."""

    def __init__(self, say: Callable[[str], None] | None) -> None:
        self._say, self._local = say, threading.local()

    def __call__(self, line: str) -> None:
        getattr(self._local, "lines", []).append(line)
        if self._say is not None:
            self._say(line)

    def start(self) -> None:
        self._local.lines = []

    def take(self) -> list[str]:
        lines, self._local.lines = getattr(self._local, "lines", []), []
        return list(lines)


def task_result(
    job_ids: Sequence[int],
    statuses: Sequence[str],
    lines: Sequence[str],
    errors: Callable[[], dict[int, str]],
) -> str:
    """The result of a message: its jobs' lines (verdicts), or the statuses when none was written. Raises
    `JobFailed` with each failed job's reason (read by ``errors`` only then) when any failed."""
    failed = [j for j, s in zip(job_ids, statuses, strict=True) if s == "failed"]
    if failed:
        reasons = errors()
        why = [f"job {j} failed: {reasons.get(j) or 'no reason recorded'}" for j in failed]
        raise JobFailed("; ".join([*why, *lines]))
    return "; ".join(lines) or ", ".join(f"job {j} {s}" for j, s in zip(job_ids, statuses, strict=True))


def job_errors(sessions: sessionmaker[Session], job_ids: Sequence[int]) -> dict[int, str]:
    """The recorded reasons of failed jobs; {} when Postgres cannot say now (the jobs are failed already)."""
    try:
        with sessions() as session:
            rows = session.execute(_ERRORS_SQL, {"ids": list(job_ids)}).all()
    except SQLAlchemyError as exc:
        log.warning("job(s)=%s reasons not read: %s", ",".join(map(str, job_ids)), exc)
        return {}
    return {int(r[0]): str(r[1] or "") for r in rows}
