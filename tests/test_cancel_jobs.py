"""Cooperative cancellation on the real job path (`JobRunner` in process, real Postgres and Redis): a job past
its deadline, a job whose lease is lost, a shutdown past its grace and a hung scorer each stop where they wait,
from the job's `Cancel`, without the injected exception."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from swarmq.errors import GenerationCancelled
from swarmq.model.base import Generation, GenerationRequest
from swarmq.model.scripted import ScriptedGenerator
from swarmq.queue.jobs.tables import JOBS
from swarmq.worker import runner as runner_module
from swarmq.worker.cancel import GRACE_SECONDS
from swarmq.worker.runner import JobRunner
from swarmq.worker.shutdown import give_back
from tests.test_runner import rows, runner, setup

pytestmark = pytest.mark.services
HANG = "def truncate_number"  # HumanEval/2's prompt: the third job of the bundled set


class Cooperative(ScriptedGenerator):
    """On prompts holding ``marker``, waits for its request's cancel as a generator that honours it does, and
    records what stopped it: the cancel's reason, or an injected exception."""

    def __init__(self, marker: str = HANG, on_start: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.marker, self.on_start, self.seen = marker, on_start, []

    def generate(self, request: GenerationRequest) -> Generation:
        if self.marker not in request.prompt:
            return super().generate(request)
        assert request.cancel is not None
        if self.on_start is not None:
            self.on_start()
        try:
            while not request.cancel.is_set():
                time.sleep(0.01)
        except BaseException as exc:
            self.seen.append(f"interrupted: {exc!r}")
            raise
        self.seen.append(request.cancel.reason)
        raise GenerationCancelled(request.cancel.reason)


def on_a_thread(fn: Callable[[], Any]) -> Any:
    """Run a job as a --slots worker does, off the main thread: a backstop there is an exception, not a
    signal that pytest's process has no handler for."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(60)
    assert out, "the job did not end"
    return out[0]


def quick(svc: Any, generator: Any) -> JobRunner:
    run = runner(svc, generator)
    run.heartbeat_seconds = 0.2
    return run


def test_a_generation_past_its_deadline_stops_when_cancelled(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=3, conditions={"a": {}}, timeout_seconds=1)
    ((job_id,),) = rows(svc, "SELECT id FROM jobs WHERE instance_id = 'HumanEval/2'")
    gen = Cooperative()
    started = time.monotonic()
    assert on_a_thread(lambda: runner(svc, gen).run(job_id)) == "failed"
    reason = "generation timed out after 1 s"
    assert gen.seen == [reason] and time.monotonic() - started < 1 + GRACE_SECONDS
    assert rows(
        svc, f"SELECT j.error, o.error FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.id = {job_id}"
    ) == [(reason, reason)]


def test_a_job_whose_lease_is_lost_stops_and_writes_nothing(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=3, conditions={"a": {}})
    ((job_id,),) = rows(svc, "SELECT id FROM jobs WHERE instance_id = 'HumanEval/2'")

    def taken() -> None:  # another worker took the job over (the lease expired while this one was cut off)
        with svc.sessions() as session:
            session.execute(JOBS.update().where(JOBS.c.id == job_id).values(lease_owner="someone/else"))
            session.commit()

    gen = Cooperative(on_start=taken)
    assert on_a_thread(lambda: quick(svc, gen).run(job_id)) == "dropped"
    assert gen.seen == ["a renewal found its lease taken or expired"]
    assert rows(svc, f"SELECT status, lease_owner FROM jobs WHERE id = {job_id}") == [
        ("running", "someone/else")
    ]
    assert rows(svc, "SELECT count(*) FROM outcomes") == [(0,)]


def test_a_shutdown_past_its_grace_stops_the_message_it_gave_back(svc: Any, tmp_path: Path) -> None:
    """What `GracefulShutdown` does past its grace: give every running job back, then cancel them. The job
    generating stops there, the message's next job never starts, and nothing is written."""
    setup(svc, tmp_path, limit=4, conditions={"a": {}}, extra={"jobs_per_message": 2, "max_spread": 100})
    ids = [
        int(r[0])
        for r in rows(
            svc, "SELECT id FROM jobs WHERE instance_id IN ('HumanEval/2', 'HumanEval/3') ORDER BY seq"
        )
    ]
    run: JobRunner | None = None
    calls: list[str] = []

    def shutdown() -> None:
        assert run is not None
        for job_id in run.running():
            assert give_back(svc.sessions, run.app, job_id, run.identity.owner, 5)
        run.cancel_all("the worker is stopping past its grace period: the job was given back")

    class Counting(Cooperative):
        def generate(self, request: GenerationRequest) -> Generation:
            calls.append(request.prompt)
            return super().generate(request)

    gen = Counting(on_start=shutdown)
    run = runner(svc, gen)
    assert on_a_thread(lambda: run.run_many(ids)) == ["dropped", "dropped"]
    assert len(calls) == 1 and gen.seen == [
        "the worker is stopping past its grace period: the job was given back"
    ]
    assert rows(svc, f"SELECT status FROM jobs WHERE id IN ({ids[0]}, {ids[1]})") == [
        ("queued",),
        ("queued",),
    ]
    assert rows(svc, "SELECT count(*) FROM outcomes") == [(0,)]


@pytest.mark.sandbox
def test_a_scorer_past_its_deadline_is_stopped_in_the_sandbox(
    svc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion that loops forever, scored under a 1 s scoring deadline: the sandbox looks at the job's
    cancel while it waits, kills the program, and the outcome is unjudged, long before the sandbox's own
    10 s wall limit (an interrupt could not reach a thread blocked in that wait)."""

    class Loops(ScriptedGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            return Generation("    while True:\n        pass\n", "stop", 10, 5, 0.001, 0.001)

    monkeypatch.setattr(runner_module, "SCORING_BACKSTOP_SECONDS", 1.0)
    setup(svc, tmp_path, limit=1, conditions={"a": {}}, success="scorer")
    ((job_id,),) = rows(svc, "SELECT id FROM jobs")
    started = time.monotonic()
    assert on_a_thread(lambda: runner(svc, Loops()).run(job_id)) == "done"
    assert time.monotonic() - started < 1 + GRACE_SECONDS
    ((status, detail, success),) = rows(svc, "SELECT score_status, score_detail, success FROM outcomes")
    assert (status, detail, success) == ("error", {"reason": "scoring timed out after 1 s"}, False)
