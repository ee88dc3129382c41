"""Lease rules on real Postgres and Redis, in process: only a finish with an outcome counts as our own retry;
a worker name is one process's; a resumed experiment keeps one definition of success."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from swarmq import keys
from swarmq.errors import ExperimentConflict, NameInUse
from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.queue import jobs
from swarmq.queue.broker import make_app
from swarmq.queue.producer import enqueue
from swarmq.worker.naming import NameLease
from tests.helpers import write_config

pytestmark = pytest.mark.services


def test_a_failed_job_is_not_mistaken_for_our_finished_one(svc: Any, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, limit=1, conditions={"a": {}}))
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    with svc.sessions() as session:
        (job_id,) = session.execute(text("SELECT id FROM jobs")).scalars()
        assert jobs.claim(session, job_id, "w/1", 60, 3) is not None
        assert jobs.fail(session, job_id, "w/1", "boom")
        # The same owner retrying a finish after its own fail: the outcome there is the failure's, not ours.
        assert not jobs.finish(session, job_id, "w/1", {}, status="done")
        assert not jobs.fail(session, job_id, "w/2", "not the holder")


def test_resume_refuses_outcomes_judged_by_another_rule(svc: Any, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, limit=1, conditions={"a": {}}))
    app = make_app(svc.redis_url)
    issues = load_issues(cfg.dataset, cfg.seed)
    enqueue(svc.sessions, app, cfg, issues)
    with svc.sessions() as session:  # an outcome recorded under an older meaning of the rule
        session.execute(
            text(
                "INSERT INTO outcomes (job_id, completion, prompt_tokens, completion_tokens, worker, model_name, "
                "model_sha256, llama_cpp_version, prompt, prompt_sha256, chat, sampling, agent_id, task_type, state_version, "
                "staleness, example_ids, update_applied, success, success_rule, score_detail) SELECT id, '', 0, 0, 'w', "
                "'m', '', '', '', '', false, '{}', 0, 'math', 0, 0, '[]', true, false, 'scorer', '{}' FROM jobs"
            )
        )
        session.commit()
    with pytest.raises(
        ExperimentConflict, match=r"judged by success rule scorer, and would now be judged by non_empty"
    ):
        enqueue(svc.sessions, app, cfg, issues)


def test_a_worker_name_is_one_processs(svc: Any) -> None:
    host = socket.gethostname()
    first = NameLease(svc.redis, "w@h", host, "a", 5)
    first.acquire()
    try:
        with pytest.raises(NameInUse, match=rf"worker name 'w@h' is in use by pid {os.getpid()} on {host}"):
            NameLease(svc.redis, "w@h", "another-host", "b", 5).acquire()
    finally:
        first.release()
    assert not svc.redis.exists(keys.worker_name_key("w@h"))


@pytest.mark.parametrize(("pid", "taken_over"), [(os.getpid(), True), (1, False), (2**22 + 7, True)])
def test_a_dead_holder_on_this_host_is_taken_over(svc: Any, pid: int, taken_over: bool) -> None:
    """Our own pid (a container's restarted PID 1) or a pid that is gone: a restart takes the name at once;
    a live process (pid 1) keeps it."""
    host = socket.gethostname()
    svc.redis.set(keys.worker_name_key("w@h"), f"{host}:{pid}:old", px=60_000)
    lease = NameLease(svc.redis, "w@h", host, "new", 5)
    try:
        if taken_over:
            lease.acquire()
            assert svc.redis.get(keys.worker_name_key("w@h")) == f"{host}:{os.getpid()}:new".encode()
        else:
            with pytest.raises(NameInUse, match="is in use by pid 1"):
                lease.acquire()
    finally:
        lease.release()
