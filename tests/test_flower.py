"""Celery and Flower as their users expect (issue 27.4), with a real Flower against a real worker: task events
on, each task named by experiment, condition and issue, a failed job a FAILURE with its reason, a scored job
a SUCCESS with its verdict, and a busy one-slot worker that still answers `celery inspect`."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from swarmq import keys
from swarmq.worker.tasks import JobFailed, Lines, shown_job_ids, task_name, task_result
from tests.conftest import ROOT, free_port
from tests.test_reliability import enqueue, scalar, start_worker, wait_for

AUTH = "swarmq:flower-test"
CELERY = [sys.executable, "-m", "celery", "-A", "swarmq.queue.broker"]


def api(port: int, path: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Authorization", "Basic " + base64.b64encode(AUTH.encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def flower_tasks(port: int) -> dict[str, dict[str, Any]]:
    try:
        return dict(api(port, "/api/tasks"))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return {}


def test_task_names_results_and_failures() -> None:
    assert task_name("exp3", "baseline", 0, "django__django-11099") == "exp3:baseline/r0:django__django-11099"
    assert task_name("e", "c", 2, "HumanEval/1", others=3) == "e:c/r2:HumanEval/1 (+3)"
    assert shown_job_ids([7]) == [7] and shown_job_ids([[7, 8]]) == [7, 8]
    assert shown_job_ids([]) == [] and shown_job_ids(["x"]) == [] and shown_job_ids([{"a": 1}]) == []
    assert (
        task_result([1, 2], ["done", "dropped"], ["job 1 done: ...: success"], dict)
        == "job 1 done: ...: success"
    )
    assert task_result([1], ["dropped"], [], dict) == "job 1 dropped"
    with pytest.raises(JobFailed, match=r"^job 2 failed: too long; job 1 done: x$"):
        task_result([1, 2], ["done", "failed"], ["job 1 done: x"], lambda: {2: "too long"})


def test_lines_are_kept_per_thread() -> None:
    said: list[str] = []
    lines = Lines(said.append)
    lines.start()
    lines("a")
    other: list[list[str]] = []

    def elsewhere() -> None:
        lines.start()
        lines("b")
        other.append(lines.take())

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert lines.take() == ["a"] and other == [["b"]] and said == ["a", "b"]


@pytest.mark.services
def test_flower_sees_named_tasks_with_their_states(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    gate = tmp_path / "gate"
    # No reaper during the test: it would republish a job delivered but not yet claimed (a message taken
    # from the queue in the moment before its claim commits), and Flower would show that second delivery.
    env = {
        **services_env,
        "SWARMQ_REAPER_SECONDS": "600",
        "SWARMQ_TEST_TOO_LONG": "def truncate_number",  # HumanEval/2's job fails (prompt over n_ctx)
        "SWARMQ_TEST_GATE_AFTER": "0",
        "SWARMQ_TEST_GATE": str(gate),
    }
    enqueue(tmp_path, env, name="flw", limit=3, conditions={"baseline": {}})
    port = free_port()
    flower = subprocess.Popen(
        [*CELERY, "flower", "--address=127.0.0.1", f"--port={port}", f"--basic_auth={AUTH}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = None
    try:
        wait_for_events(port, redis_url)
        worker = start_worker(env, generator="gated_failing_generator", name="flw")
        node = f"flw@{socket.gethostname()}"
        wait_for(
            lambda: scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'") == 1,
            60,
            "a job",
        )

        # A one-slot worker holding a job answers inspect, and names what it runs.
        from swarmq.queue.broker import make_app

        app = make_app(redis_url)
        try:
            assert app.control.ping(destination=[node], timeout=5.0) == [{node: {"ok": "pong"}}]
            active = (app.control.inspect(destination=[node], timeout=5.0).active() or {}).get(node, [])
        finally:
            app.close()
        assert len(active) == 1 and re.fullmatch(r"flw:baseline/r0:HumanEval/\d", active[0]["name"]), active
        assert scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'") == 1  # still busy

        gate.touch()
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, out[-3000:]
        wanted = {f"flw:baseline/r0:HumanEval/{i}" for i in range(3)}

        def settled() -> dict[str, dict[str, Any]]:
            tasks = {t["name"]: t for t in flower_tasks(port).values() if t.get("name") in wanted}
            return tasks if all(t["state"] in ("SUCCESS", "FAILURE") for t in tasks.values()) else {}

        try:
            wait_for(lambda: set(settled()) == wanted, 60, "Flower to see every task end")
        except AssertionError:
            seen = {u: (t.get("name"), t.get("state")) for u, t in flower_tasks(port).items()}
            raise AssertionError(f"Flower saw {seen}; the worker said:\n{out[-3000:]}") from None
        tasks = settled()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.communicate()
        flower.terminate()
        flower.communicate(timeout=30)
    failed = tasks["flw:baseline/r0:HumanEval/2"]
    assert failed["state"] == "FAILURE", failed
    assert "JobFailed" in failed["exception"] and "exceed context window of 2048" in failed["exception"]
    for i in (0, 1):
        scored = tasks[f"flw:baseline/r0:HumanEval/{i}"]
        assert scored["state"] == "SUCCESS", scored
        assert f"done: baseline/r0 HumanEval/{i} agent" in scored["result"], (scored, out[-3000:])
        assert ": success," in scored["result"] or ": failure," in scored["result"], scored
    assert {t["worker"] for t in tasks.values()} == {node}


def wait_for_events(port: int, redis_url: str) -> None:
    """Until Flower's event receiver takes events: a probe task event, sent again until Flower lists it (a
    worker's first events would otherwise be lost while Flower connects)."""
    from swarmq.queue.broker import make_app

    app = make_app(redis_url)
    probe = f"{keys.TASK_ID_PREFIX}probe-{time.monotonic_ns()}"
    try:
        with app.events.default_dispatcher() as dispatcher:

            def seen() -> bool:
                dispatcher.send("task-received", uuid=probe, name="probe", args="()", kwargs="{}")
                return probe in flower_tasks(port)

            wait_for(seen, 60, "Flower to receive events")
    finally:
        app.close()
