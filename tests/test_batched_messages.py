"""Messages of several jobs (`broker.publish` with ``per_message``): their shape in kombu's Redis queues, and the
reaper's reading of them (`reaper.message_job_ids`, `broker_job_ids`, `drop_tasks`, republishing the missing),
on a real Redis (and Postgres for the reaper)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from swarmq import keys
from swarmq.experiment.dataset import load_issues
from swarmq.experiment.file import load_config
from swarmq.queue import broker
from swarmq.queue.broker import make_app, publish
from swarmq.queue.producer import enqueue
from swarmq.queue.reaper import broker_job_ids, drop_tasks, message_job_ids, reap
from tests.helpers import write_config

pytestmark = pytest.mark.services

OLD_MESSAGE = (
    b'{"body": "W1s1XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVs'
    b'bH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": '
    b'"swarmq.run_job", "id": "job-5", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": '
    b'null, "retries": 0, "timelimit": [null, null], "root_id": "job-5", "parent_id": null, "argsrepr": "[5]", '
    b'"kwargsrepr": "{}", "origin": "gen24171@vm", "ignore_result": null, "replaced_task_nesting": 0, '
    b'"stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "job-5", "reply_to": '
    b'"11ffd91f-1fc6-3180-a97b-23cf38643e11", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": '
    b'"swarmq.a.gguf"}, "priority": 0, "body_encoding": "base64", "delivery_tag": '
    b'"2d395634-7cb3-4f6c-81d6-e15b22903c93"}}'
)
"""A queue entry as swarmq wrote it before batches (job 5), copied from Redis: kombu 5, Celery protocol 2."""


def entries(svc: Any, key: str) -> list[bytes]:
    """A model queue's raw entries, oldest first (kombu LPUSHes, consumers BRPOP)."""
    return list(reversed(svc.redis.lrange(keys.queue_name(key), 0, -1)))


def decoded(raw: bytes) -> tuple[str, list[Any]]:
    """(task id, positional args) of a queue entry, read the way Celery reads it."""
    msg = json.loads(raw)
    assert msg["properties"]["body_encoding"] == "base64" and msg["headers"]["task"] == keys.TASK_NAME
    args, kwargs, _embed = json.loads(base64.b64decode(msg["body"]))
    assert kwargs == {}
    return msg["headers"]["id"], args


def test_per_message_cuts_a_queue_s_jobs_into_messages(svc: Any) -> None:
    app = make_app(svc.redis_url)
    assert publish(app, [(i, "a.gguf") for i in range(1, 8)], per_message=3) == 7
    assert [decoded(m) for m in entries(svc, "a.gguf")] == [
        ("job-1", [[1, 2, 3]]),
        ("job-4", [[4, 5, 6]]),
        ("job-7", [7]),
    ]


def test_one_job_a_message_is_the_message_sent_before_batches(svc: Any) -> None:
    app = make_app(svc.redis_url)
    assert publish(app, [(1, "a.gguf"), (2, "a.gguf")]) == 2
    assert publish(app, [(3, "a.gguf")], per_message=5) == 1
    with app.producer_or_acquire() as producer:  # what publish sent before batches, for job 4
        app.send_task(
            keys.TASK_NAME,
            args=[4],
            queue=keys.queue_name("a.gguf"),
            producer=producer,
            task_id=keys.task_id(4),
        )
    got = entries(svc, "a.gguf")
    assert [decoded(m) for m in got] == [("job-1", [1]), ("job-2", [2]), ("job-3", [3]), ("job-4", [4])]

    def shape(raw: bytes, job_id: int) -> str:
        """The entry, its body decoded, with its job id spelled N and its delivery tag (one per message) out."""
        msg = json.loads(raw)
        del msg["properties"]["delivery_tag"]
        msg["body"] = base64.b64decode(msg["body"]).decode()
        return json.dumps(msg).replace(f"job-{job_id}", "job-N").replace(f"[{job_id}]", "[N]")

    assert "[N]" in shape(got[2], 3) and "job-N" in shape(got[2], 3)
    assert shape(got[2], 3) == shape(got[3], 4)


def test_only_consecutive_jobs_of_a_queue_share_a_message(svc: Any) -> None:
    pairs = [(1, "a.gguf"), (2, "a.gguf"), (3, "b.gguf"), (4, "a.gguf")]
    assert list(broker.messages(pairs, 10)) == [("a.gguf", [1, 2]), ("b.gguf", [3]), ("a.gguf", [4])]
    assert publish(make_app(svc.redis_url), pairs, per_message=10) == 4
    assert [decoded(m) for m in entries(svc, "a.gguf")] == [("job-1", [[1, 2]]), ("job-4", [4])]
    assert [decoded(m) for m in entries(svc, "b.gguf")] == [("job-3", [3])]


def test_per_message_below_one_is_refused(svc: Any) -> None:
    with pytest.raises(ValueError, match="per_message must be at least 1"):
        publish(make_app(svc.redis_url), [(1, "a.gguf")], per_message=0)
    assert entries(svc, "a.gguf") == []


def test_broker_job_ids_reads_batches_single_and_old_messages_and_skips_the_rest(svc: Any) -> None:
    app = make_app(svc.redis_url)
    publish(app, [(1, "a.gguf"), (2, "a.gguf"), (3, "a.gguf")], per_message=3)
    publish(app, [(4, "a.gguf"), (9, "b.gguf")])
    queue = keys.queue_name("a.gguf")
    svc.redis.lpush(queue, OLD_MESSAGE)
    unreadable = json.loads(OLD_MESSAGE)
    unreadable["body"], unreadable["headers"]["id"] = "@@not base64@@", "job-8"
    svc.redis.lpush(queue, json.dumps(unreadable))
    with app.producer_or_acquire() as producer:  # another Celery task's message in the same queue
        app.send_task("other.task", args=[77], queue=queue, producer=producer, task_id="job-77")
    other = entries(svc, "a.gguf")[-1]
    garbage = [b"not json", b"\xff\xfe", b"[1, 2]", b'{"headers": "x"}', b'{"body": "W1s2XV0="}']
    svc.redis.lpush(queue, *garbage)

    assert broker_job_ids(svc.redis, {"a.gguf"}) == {1, 2, 3, 4, 5, 8}
    assert broker_job_ids(svc.redis, {"a.gguf", "b.gguf"}) == {1, 2, 3, 4, 5, 8, 9}
    assert broker_job_ids(svc.redis, {"c.gguf"}) == set()
    assert message_job_ids(entries(svc, "a.gguf")[0]) == [1, 2, 3]
    assert message_job_ids(OLD_MESSAGE) == [5]
    assert message_job_ids(OLD_MESSAGE.decode()) == [5]
    assert message_job_ids(json.dumps(unreadable)) == [8]
    assert [message_job_ids(g) for g in [other, *garbage]] == [[]] * 6


def test_drop_tasks_takes_out_a_batch_for_any_of_its_jobs(svc: Any) -> None:
    app = make_app(svc.redis_url)
    publish(app, [(1, "a.gguf"), (2, "a.gguf"), (3, "a.gguf")], per_message=3)
    publish(app, [(4, "a.gguf"), (5, "a.gguf"), (6, "b.gguf")], per_message=2)
    svc.redis.lpush(keys.queue_name("a.gguf"), b"not json")

    assert drop_tasks(svc.redis, [(2, "a.gguf")]) == 3
    assert [m if m == b"not json" else decoded(m) for m in entries(svc, "a.gguf")] == [
        ("job-4", [[4, 5]]),
        b"not json",
    ]
    assert drop_tasks(svc.redis, [(6, "a.gguf")]) == 0  # a job is looked for in its own model's queue only
    assert drop_tasks(svc.redis, [(5, "a.gguf"), (6, "b.gguf")]) == 3
    assert entries(svc, "a.gguf") == [b"not json"]
    assert entries(svc, "b.gguf") == []


def test_the_reaper_republishes_only_jobs_in_no_message(svc: Any, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, limit=6, conditions={"a": {}}))
    app = make_app(svc.redis_url)
    enqueue(svc.sessions, app, cfg, load_issues(cfg.dataset, cfg.seed))
    with svc.sessions() as session:
        rows = session.execute(
            text("SELECT id, model_key FROM jobs WHERE status = 'queued' ORDER BY id")
        ).all()
        session.execute(
            text("UPDATE jobs SET published_at = now() - interval '1 hour' WHERE status = 'queued'")
        )
        session.commit()
    queued = [(int(j), str(k)) for j, k in rows]
    assert len(queued) >= 3, queued
    (key,) = {k for _, k in queued}
    svc.redis.delete(keys.queue_name(key))  # Redis lost the messages; the batches come back, the last job not
    assert publish(app, queued[:-1], per_message=2) == len(queued) - 1
    before = entries(svc, key)
    assert all(len(decoded(m)[1][0]) == 2 for m in before[:-1]), before

    result = reap(svc.sessions, app, svc.redis, max_attempts=3, grace_seconds=0.0)
    assert result.republished == 1
    after = entries(svc, key)
    assert after[:-1] == before
    assert decoded(after[-1]) == (keys.task_id(queued[-1][0]), [queued[-1][0]])
    assert broker_job_ids(svc.redis, {key}) == {j for j, _ in queued}
    with svc.sessions() as session:
        fresh = session.execute(
            text("SELECT id FROM jobs WHERE published_at > now() - interval '1 minute'")
        ).all()
    assert [int(r[0]) for r in fresh] == [queued[-1][0]]
