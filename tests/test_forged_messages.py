"""A queue that trusts no message: whatever is pushed onto a model's queue, the worker stays up, runs no job
on the wrong model, logs one line per forged entry (never a traceback), and sends real jobs that came by the
wrong queue back to their own."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis as redis_lib

from swarmq import keys
from swarmq.queue.broker import make_app
from swarmq.queue.jobs.claims import _Row, decide_refusal
from swarmq.queue.messages import MAX_JOBS_PER_MESSAGE, BadMessage, check_envelope, job_ids
from tests.conftest import ROOT, swarmq
from tests.helpers import write_config
from tests.test_reliability import FAST, db

# ---------------------------------------------------------------------------------------------------------
# The pure checks


@pytest.mark.parametrize("arg", [1, [1], [1, 2, 3], 2**63 - 1])
def test_job_ids_takes_positive_64_bit_ints(arg: Any) -> None:
    assert job_ids(arg) == (arg if isinstance(arg, list) else [arg])


@pytest.mark.parametrize(
    "arg",
    [0, -1, 1.0, 1.5, "7", True, False, None, 2**63, 2**70, [], [1, 1], [1, "2"], [[1]], {"id": 1},
     list(range(1, MAX_JOBS_PER_MESSAGE + 2))],
)  # fmt: skip
def test_job_ids_refuses_everything_else(arg: Any) -> None:
    with pytest.raises(BadMessage) as err:
        job_ids(arg)
    assert "\n" not in str(err.value) and len(str(err.value)) < 120


def test_the_message_bound_is_the_configs() -> None:
    """The decoder's bound is the one `jobs_per_message` may not exceed."""
    from swarmq.experiment.config import ExperimentConfig

    field = ExperimentConfig.model_fields["jobs_per_message"]
    check = next(m for m in field.metadata if hasattr(m, "func"))
    check.func(MAX_JOBS_PER_MESSAGE, _Info())
    with pytest.raises(ValueError, match="above the limit"):
        check.func(MAX_JOBS_PER_MESSAGE + 1, _Info())


class _Info:
    context = None
    data: ClassVar[dict[str, Any]] = {}
    field_name = "jobs_per_message"


def envelope(args: Any, *, task: str = keys.TASK_NAME, kwargs: Any = None, **over: Any) -> dict[str, Any]:
    """A Celery protocol-2 message as kombu keeps it in a Redis list."""
    body = base64.b64encode(json.dumps([args, kwargs or {}, {}]).encode()).decode()
    env = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": task, "id": "job-1", "lang": "py"},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": "d2c0",
            "delivery_info": {"exchange": "", "routing_key": "swarmq.m"},
            "priority": 0,
        },
    }
    env.update(over)
    return env


def test_an_envelope_swarmq_sent_passes() -> None:
    assert check_envelope(envelope([5])) == [5]
    assert check_envelope(envelope([[5, 6]])) == [5, 6]


FORGED_ENVELOPES = {
    "a list": [1, 2],
    "a string": "x",
    "no properties": {"body": "e30="},
    "another task": envelope([1], task="evil.task"),
    "pickle": envelope([1], **{"content-type": "application/x-python-serialize"}),
    "two args": envelope([1, 2]),
    "kwargs": envelope([1], kwargs={"x": 1}),
    "bad base64": {**envelope([1]), "body": "@@@"},
    "body not json": {**envelope([1]), "body": base64.b64encode(b"not json").decode()},
    "float id": envelope([1.0]),
    "string id": envelope(["1"]),
    "bool id": envelope([True]),
    "huge id": envelope([2**70]),
    "empty batch": envelope([[]]),
    "too many": envelope([list(range(1, 1100))]),
}


@pytest.mark.parametrize("payload", FORGED_ENVELOPES.values(), ids=FORGED_ENVELOPES.keys())
def test_forged_envelopes_are_refused_in_one_line(payload: Any) -> None:
    with pytest.raises(BadMessage) as err:
        check_envelope(payload)
    assert "\n" not in str(err.value)


def row(id_: int, key: str = "m", status: str = "queued", exp: int = 1, state: str = "active") -> _Row:
    return _Row(id_, key, status, exp, state, 4)


def test_refusal_reasons_and_what_goes_back() -> None:
    assert decide_refusal([], 1, "m").reason == "no such job"
    wrong = decide_refusal([row(1, "other"), row(2, "other", status="done")], 2, "m")
    assert "model other" in wrong.reason and wrong.republish == [(1, "other")]
    mixed = decide_refusal([row(1), row(2, exp=2)], 2, "m")
    assert "2 experiments" in mixed.reason and mixed.republish == [(1, "m"), (2, "m")]
    assert "5 jobs" in decide_refusal([row(i) for i in range(1, 6)], 5, "m").reason
    paused = decide_refusal([row(1, status="paused", state="paused")], 1, "m")
    assert paused.reason == "experiment paused" and not paused.republish
    again = decide_refusal([row(1, status="done")], 1, "m")
    assert again.routine and not again.republish


# ---------------------------------------------------------------------------------------------------------
# A live worker


def raw_forms(redis_url: str) -> list[bytes]:
    """Queue entries kombu itself cannot read, or that are no swarmq task."""
    return [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"x"',
        b"{}",
        b'{"__type__": "datetime", "__value__": "nope"}',
        json.dumps({"body": "e30=", "properties": {}}).encode(),
        *(json.dumps(v).encode() for v in FORGED_ENVELOPES.values() if isinstance(v, dict)),
    ]


@pytest.mark.services
@pytest.mark.faults
def test_a_worker_survives_every_forged_form_and_runs_no_job_on_the_wrong_model(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST}
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + bytes(60))
    # Another model's experiment: its jobs wait on their own queue, which no worker here serves.
    theirs = write_config(tmp_path, name="theirs", limit=2, conditions={"baseline": {}}, model=str(other))
    assert swarmq("enqueue", str(theirs), env=env).returncode == 0
    with db(database_url) as conn:
        their_ids = [i for (i,) in conn.execute("SELECT id FROM jobs ORDER BY id").fetchall()]
    r = redis_lib.Redis.from_url(redis_url)
    mine, their_queue = keys.queue_name("stand-in.gguf"), keys.queue_name("other.gguf")
    their_len = r.llen(their_queue)
    forms = raw_forms(redis_url)
    for raw in forms:
        r.lpush(mine, raw)
    app = make_app(redis_url)
    from swarmq.queue.broker import publish

    publish(app, [(their_ids[0], "stand-in.gguf")])  # another model's job, on this model's queue
    app.send_task(keys.TASK_NAME, args=[their_ids], queue=mine, task_id="job-forged")  # a batch of them
    ours = write_config(tmp_path, name="ours", limit=3, conditions={"baseline": {}})
    assert swarmq("enqueue", str(ours), env=env).returncode == 0
    with db(database_url) as conn:
        our_ids = [i for (i,) in conn.execute("SELECT id FROM jobs WHERE id <> ALL(%s)", (their_ids,))]
    app.send_task(keys.TASK_NAME, args=[our_ids], queue=mine, task_id="job-toomany")  # over jobs_per_message
    w = subprocess.run(
        [sys.executable, "-m", "swarmq", "worker", "--cpu", "--burst", "--model", "models/stand-in.gguf",
         "--generator", "tests.fakes:hash_generator"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = w.stdout + w.stderr
    assert w.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "Unrecoverable" not in out, out[-3000:]
    assert out.count("discarded an entry swarmq does not run") == len(forms), out[-3000:]
    assert out.count("dropped: job of model other.gguf, not this worker's stand-in.gguf") == 1, out[-3000:]
    assert out.count("dropped: 2 jobs in one message (its experiment sends 1)") == 1, out[-3000:]
    assert out.count("dropped: 3 jobs in one message") == 1, out[-3000:]
    with db(database_url) as conn:
        theirs_now = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'queued'), count(o.id) FROM jobs j "
            "LEFT JOIN outcomes o ON o.job_id = j.id WHERE j.id = ANY(%s)",
            (their_ids,),
        ).fetchone()
        ours_now = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'done'), count(DISTINCT o.job_id) FROM jobs j "
            "LEFT JOIN outcomes o ON o.job_id = j.id WHERE j.id = ANY(%s)",
            (our_ids,),
        ).fetchone()
    assert theirs_now == (2, 0)  # not run, not touched
    assert ours_now == (3, 3)
    assert r.llen(their_queue) == their_len + 3  # the forged ones went back to their own queue, one a message
    assert r.llen(mine) == 0
