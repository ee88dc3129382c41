"""The worker's job path on real Postgres: one statement per step (claim, finish, release with the applied
mark), no BEGIN or COMMIT around them, and the claim's word on unapplied swarm updates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Integer, bindparam, literal, select, text
from sqlalchemy.dialects.postgresql import JSONB

from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.queue import jobs
from swarmq.queue.broker import make_app
from swarmq.queue.producer import enqueue
from swarmq.store.db import autocommit_connections
from swarmq.store.frozen import freeze
from swarmq.store.outcomes import AppliedMark
from tests.helpers import write_config

pytestmark = pytest.mark.services

OUTCOME = {
    "completion": "x",
    "finish_reason": "stop",
    "worker": "w",
    "model_name": "m",
    "model_sha256": "",
    "llama_cpp_version": "",
    "prompt": "p",
    "prompt_sha256": "",
    "sampling": {"seed": 1},
    "agent_id": 0,
    "task_type": "string",
    "example_ids": [],
    "success": True,
    "success_rule": "non_empty",
    "score_status": "ok",
    "score_detail": {},
    "job_seconds": 0.01,
}


def test_a_frozen_statement_keeps_its_literals_and_asks_for_its_parameters(svc: Any) -> None:
    stmt = freeze(
        select(
            literal("kept").label("word"),
            (bindparam("n", type_=Integer) + 1).label("n"),
            bindparam("doc", type_=JSONB).label("doc"),
        )
    )
    with svc.sessions() as session:
        (row,) = stmt.run(session, n=41, doc={"a": [1, 2]})  # a JSONB value goes through its type's processor
    assert (row.word, row.n, row.doc) == ("kept", 42, {"a": [1, 2]})
    with pytest.raises(TypeError, match=r"needs parameters \['doc', 'n'\]"):
        stmt.params({})


def _jobs(svc: Any, tmp_path: Path) -> dict[tuple[str, int], int]:
    cfg = load_config(write_config(tmp_path, limit=2, conditions={"a": {}, "b": {}}))
    enqueue(svc.sessions, make_app(svc.redis_url), cfg, load_issues(cfg.dataset, cfg.seed))
    with svc.sessions() as session:
        rows = session.execute(text("SELECT condition, position, id FROM jobs WHERE status = 'queued'")).all()
    return {(c, p): i for c, p, i in rows}


def test_each_step_is_one_statement_without_begin_or_commit(
    svc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _jobs(svc, tmp_path)
    sent: list[str] = []
    autocommit: list[bool] = []
    execute = psycopg.Cursor.execute

    def seen(
        cursor: Any, query: Any, *args: Any, **kwargs: Any
    ) -> Any:  # below SQLAlchemy: what psycopg sends
        sent.append(str(query))
        autocommit.append(bool(cursor.connection.autocommit))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", seen)
    steps = []
    with autocommit_connections(svc.sessions)() as conn:
        claimed = jobs.claim(conn, ids[("a", 0)], "w/1", 60, 3)
        steps.append(len(sent))
        assert jobs.finish(conn, ids[("a", 0)], "w/1", OUTCOME)
        steps.append(len(sent))
        jobs.release(
            conn,
            claimed.experiment_id,
            {"a": None, "b": None},
            4,
            relaxed=True,
            applied=[AppliedMark(ids[("a", 0)], 0, 1)],
        )
        steps.append(len(sent))
    monkeypatch.undo()
    assert steps == [1, 2, 3], sent
    assert all(autocommit)  # psycopg sends no BEGIN, so no COMMIT either: each statement is its transaction
    with svc.sessions() as session:
        status, applied, version = session.execute(
            text(
                "SELECT j.status, o.update_applied, o.applied_version FROM jobs j JOIN outcomes o ON o.job_id = j.id"
            )
        ).one()
    assert (status, applied, version) == ("done", True, 1)


def test_the_claim_says_whether_its_own_stream_has_unapplied_updates(svc: Any, tmp_path: Path) -> None:
    ids = _jobs(svc, tmp_path)
    with autocommit_connections(svc.sessions)() as session:
        first = jobs.claim(session, ids[("a", 0)], "w/1", 60, 3)
        assert first is not None and not first.unapplied
        assert jobs.finish(session, ids[("a", 0)], "w/1", OUTCOME)  # its swarm update is not applied yet
        same_stream = jobs.claim(session, ids[("a", 1)], "w/1", 60, 3)
        other_stream = jobs.claim(session, ids[("b", 0)], "w/1", 60, 3)
    assert same_stream is not None and same_stream.unapplied
    assert other_stream is not None and not other_stream.unapplied
    assert same_stream.instance_id and same_stream.problem  # the issue comes with the claim
