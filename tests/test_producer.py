"""The producer's writes and sends: one row per planned job (COPY), nothing left of a failed write, and each
job's message on its model's queue. Real Postgres and Redis, in process."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy import text

from swarmq import keys
from swarmq.experiment.config import DatasetConfig, ExperimentConfig
from swarmq.experiment.dataset import load_issues
from swarmq.experiment.plan import plan_jobs
from swarmq.queue import producer
from swarmq.queue.broker import make_app, publish

pytestmark = pytest.mark.services

CONFIG: dict[str, Any] = {
    "name": "rows",
    "seed": 3,
    "dataset": {"benchmark": "humaneval", "limit": 5},
    "model": {"path": "models/first.gguf"},
    "conditions": {
        "a": {"ordering": "relaxed"},
        "b": {"ordering": "strict", "model": {"path": "other/second.gguf"}},
    },
    "replicates": 2,
    "max_spread": 2,
}


def test_enqueue_writes_one_row_per_planned_job(svc: Any) -> None:
    config = ExperimentConfig.model_validate(CONFIG)
    issues = load_issues(DatasetConfig(benchmark="humaneval", limit=5), 0)
    result = producer.enqueue(svc.sessions, make_app(svc.redis_url), config, issues)
    with svc.engine.connect() as conn:
        issue_ids = dict(conn.execute(text("SELECT instance_id, id FROM issues")).all())
        rows = conn.execute(
            text(
                "SELECT condition, replicate, instance_id, position, seq, issue_id, model_key, attempts, status, "
                "created_at IS NOT NULL, published_at IS NOT NULL FROM jobs ORDER BY seq"
            )
        ).all()
    planned = list(plan_jobs(issues, ["a", "b"], 2))
    assert len(rows) == len(planned) == result.jobs == 20
    model = {"a": "first.gguf", "b": "second.gguf"}
    expected = [
        (
            p["condition"],
            p["replicate"],
            p["instance_id"],
            p["position"],
            p["seq"],
            issue_ids[p["instance_id"]],
            model[p["condition"]],
            0,
        )
        for p in planned
    ]
    assert [tuple(r[:8]) for r in rows] == expected
    # Positions 0 and 1 (max_spread 2) of relaxed "a" are released at once; strict "b" one job per stream.
    queued = [(r.condition, r.replicate, r.position) for r in rows if r.status == "queued"]
    assert sorted(queued) == [("a", 0, 0), ("a", 0, 1), ("a", 1, 0), ("a", 1, 1), ("b", 0, 0), ("b", 1, 0)]
    assert result.published == len(queued)
    assert all(r[9] for r in rows)  # created_at: the table's default
    assert [r[10] for r in rows] == [r.status == "queued" for r in rows]  # published_at only where released


def test_a_failed_copy_leaves_nothing(svc: Any) -> None:
    """A plan that breaks half way through the COPY leaves no row of its transaction behind."""
    with svc.sessions() as session:
        exp = session.execute(
            text(
                "INSERT INTO experiments (name, config, config_hash, benchmark, model_key) "
                "VALUES ('x', '{}', 'h', 'humaneval', 'first.gguf') RETURNING id"
            )
        ).scalar_one()
        issue = session.execute(
            text(
                "INSERT INTO issues (experiment_id, instance_id, task_type, problem, data) "
                "VALUES (:e, 'i', 'logic', 'p', '{}') RETURNING id"
            ),
            {"e": exp},
        ).scalar_one()

        def rows() -> Any:
            for seq in range(3):
                yield (exp, issue, "a", seq, "i", 0, seq, "pending", 0, "first.gguf")
            raise ValueError("the plan broke")

        with pytest.raises(ValueError, match="the plan broke"):
            producer.copy_jobs(session, rows())
        session.rollback()
    with svc.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM experiments")).scalar() == 0


def messages(redis_url: str, queue: str) -> list[dict[str, Any]]:
    """Celery's messages in a kombu Redis queue, oldest first (kombu LPUSHes and consumers BRPOP)."""
    raw = redis_lib.Redis.from_url(redis_url).lrange(queue, 0, -1)
    return [json.loads(m) for m in reversed(raw)]


def test_publish_puts_each_job_on_its_models_queue(svc: Any) -> None:
    app = make_app(svc.redis_url)
    assert publish(app, [(1, "a.gguf"), (2, "b.gguf"), (3, "a.gguf"), (4, "a.gguf")]) == 4
    for key, ids in (("a.gguf", [1, 3, 4]), ("b.gguf", [2])):
        got = messages(svc.redis_url, keys.queue_name(key))
        assert [m["headers"]["id"] for m in got] == [keys.task_id(i) for i in ids]
        assert {m["headers"]["task"] for m in got} == {keys.TASK_NAME}
        bodies = [json.loads(base64.b64decode(m["body"])) for m in got]
        assert [b[0] for b in bodies] == [[i] for i in ids]
        assert {m["properties"]["delivery_info"]["routing_key"] for m in got} == {keys.queue_name(key)}
