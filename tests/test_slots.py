"""`swarmq worker --slots K` on the real path: K jobs in flight in one worker process (Celery threads), the
batching engine on the real demo GGUF, and a job deadline that reaches a job running on a pool thread."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from swarmq.model.base import Generation, GenerationRequest
from swarmq.model.scripted import ScriptedGenerator
from tests.conftest import ROOT, swarmq
from tests.helpers import write_config
from tests.test_reliability import FAST, db

pytestmark = [pytest.mark.services]
UNLIMITED = {"baseline": {}, "other": {"agents": 2, "router": "random", "accumulate": False}}


@pytest.mark.model
def test_a_slots_worker_runs_every_job_once_on_the_real_model(
    tmp_path: Path, services_env: dict[str, str], database_url: str, demo_model: Path
) -> None:
    cfg = write_config(
        tmp_path, name="slots", limit=3, conditions=UNLIMITED, model=str(demo_model), max_tokens=24
    )
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    w = subprocess.run(
        [sys.executable, "-m", "swarmq", "worker", "--cpu", "--slots", "3", "--burst"],
        cwd=ROOT,
        env=services_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert w.returncode == 0, (w.stdout + w.stderr)[-3000:]
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT j.status, j.attempts, o.slots, o.mean_batch_size, o.completion_tokens, o.finish_reason, o.error "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id"
        ).fetchall()
    assert len(rows) == 6 and {r[:3] for r in rows} == {("done", 1, 3)}, [r[6] for r in rows]
    assert all(1.0 <= r[3] <= 3.0 for r in rows) and max(r[3] for r in rows) > 1.5  # decoded together
    assert all(r[4] > 0 and r[5] in ("stop", "length") for r in rows)


def sliced_hanging_generator(path: Path, cfg: object, gpu: int | None) -> ScriptedGenerator:
    """Prompts with SWARMQ_TEST_HANG wait forever in short slices, as the batching engine's job threads do;
    only the job watch's asynchronous exception ends them."""

    class Hanging(ScriptedGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            if os.environ["SWARMQ_TEST_HANG"] in request.prompt:
                while True:
                    time.sleep(0.05)
            return super().generate(request)

    return Hanging()


def test_a_hung_generation_on_a_pool_thread_times_out(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_HANG": "def truncate_number"}
    r = swarmq(
        "enqueue",
        str(write_config(tmp_path, name="hang", limit=4, conditions={"baseline": {}}, timeout_seconds=1)),
        env=env,
    )
    assert r.returncode == 0, r.stderr
    cmd = [
        sys.executable,
        "-m",
        "swarmq",
        "worker",
        "--cpu",
        "--burst",
        "--slots",
        "2",
        "--generator",
        "tests.test_slots:sliced_hanging_generator",
    ]
    w = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert w.returncode == 0, (w.stdout + w.stderr)[-3000:]
    with db(database_url) as conn:
        state = dict(
            conn.execute("SELECT instance_id, status || ':' || coalesce(error, '') FROM jobs").fetchall()
        )
    assert state == {
        "HumanEval/0": "done:",
        "HumanEval/1": "done:",
        "HumanEval/3": "done:",
        "HumanEval/2": "failed:generation timed out after 1 s",
    }


def test_slots_out_of_range_is_refused(services_env: dict[str, str]) -> None:
    r = swarmq("worker", "--cpu", "--slots", "0", "--model", "models/x.gguf", env=services_env)
    assert r.returncode == 2 and "--slots must be between 1 and 32" in r.stderr


def test_replay_says_which_slot_configuration_it_reproduces() -> None:
    from swarmq.report.replay import ReplayReport

    report = ReplayReport(
        job_id=7,
        model_path=Path("m.gguf"),
        model_sha256="a" * 64,
        recorded_sha256="a" * 64,
        llama_cpp_version="0.3",
        recorded_llama_cpp_version="0.3",
        recorded="x",
        replayed="y",
        finish_reason="stop",
        recorded_finish_reason="stop",
        offset=0,
        recorded_context="'x'",
        replayed_context="'y'",
        recorded_slots=4,
        recorded_mean_batch=3.5,
    )
    assert (
        report.summary()
        .splitlines()[-1]
        .startswith(
            "  note: replay runs slots 1 (one sequence at a time); recorded with slots 4, mean batch 3.50:"
        )
    )
    same = ReplayReport(**{**report.__dict__, "recorded_slots": 1})
    assert "slots" not in same.summary()


def test_enqueue_warns_when_slots_exceed_the_runnable_streams(tmp_path: Path) -> None:
    from swarmq.experiment.file import load_config
    from swarmq.report.workers import runnable_streams, slots_warning

    strict = load_config(
        write_config(
            tmp_path,
            name="s",
            replicates=3,
            conditions={
                "a": {"agents": 2, "router": "affinity", "accumulate": True},
                "b": {"ordering": "relaxed", "max_in_flight": 2},
            },
        )
    )
    assert runnable_streams(strict) == 3 * 1 + 3 * 2
    worker = {"state": "live", "slots": 4, "model_key": None}
    assert slots_warning({"workers": [worker, worker]}, strict) is None  # 8 slots, 9 runnable
    warning = slots_warning({"workers": [worker] * 3}, strict)
    assert warning is not None and "12 slots" in warning and "only 9 job(s) at once" in warning
    assert slots_warning({"workers": [{**worker, "state": "lost"}] * 3}, strict) is None
    # An unlimited relaxed stream still runs at most max_spread positions (4 by default) at once.
    unlimited = load_config(write_config(tmp_path, name="u", conditions={"a": {}}))
    assert runnable_streams(unlimited) == 4 and slots_warning({"workers": [worker]}, unlimited) is None
    assert "only 4 job(s) at once" in str(slots_warning({"workers": [worker] * 2}, unlimited))
    # A position holds an issue's samples: with 3, the window holds 12 jobs of that stream.
    gen = {"max_tokens": 32, "temperature": 0.5, "samples": 3}
    sampled = load_config(write_config(tmp_path, name="v", conditions={"a": {}}, extra={"generation": gen}))
    assert runnable_streams(sampled) == 12


def test_a_busy_slots_worker_answers_ping_and_inspect(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """The solo pool goes silent while a job runs; with --slots 2 (threads pool) the worker's consumer thread
    stays free, so `celery inspect ping` / `active` answer while both slots generate."""
    import socket

    from swarmq.queue.broker import make_app
    from tests.test_reliability import start_worker, wait_for

    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "4"}
    assert (
        swarmq(
            "enqueue", str(write_config(tmp_path, name="ping", limit=2, conditions=UNLIMITED)), env=env
        ).returncode
        == 0
    )
    node = f"pingme@{socket.gethostname()}"
    proc = start_worker(env, name="pingme", slots=2)
    try:
        wait_for(lambda: _running(database_url) == 2, 60, "both slots busy")
        app = make_app(redis_url)
        try:
            started = time.monotonic()
            replies = app.control.ping(destination=[node], timeout=2.0)
            ping_seconds = time.monotonic() - started
            active = app.control.inspect(destination=[node], timeout=2.0).active() or {}
        finally:
            app.close()
        assert _running(database_url) == 2, (
            "the jobs finished before the worker was asked: the check proved nothing"
        )
        assert replies == [{node: {"ok": "pong"}}], replies
        assert ping_seconds < 2.0
        assert len(active.get(node, [])) == 2, active
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    with db(database_url) as conn:
        assert conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'done') FROM jobs"
        ).fetchone() == (4, 4)


def _running(database_url: str) -> int:
    with db(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()
    return int(row[0]) if row else 0
