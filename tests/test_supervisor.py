"""The supervisor with real child processes (tiny python -c scripts): restarts, backoff, graceful stop."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from swarmq.queue.retry import backoff
from swarmq.worker.supervisor import Supervisor, worker_command

# Counts its runs in a file per GPU; exits 1 on the first `fails` runs, then 0.
FLAKY = """
import pathlib, sys
p = pathlib.Path(sys.argv[1])
n = int(p.read_text()) if p.exists() else 0
p.write_text(str(n + 1))
sys.exit(1 if n < int(sys.argv[2]) else 0)
"""
# First run: write its pid and sleep (to be killed); later runs exit 0.
SLEEPER = """
import os, pathlib, sys, time
p = pathlib.Path(sys.argv[1])
n = int(p.read_text()) if p.exists() else 0
p.write_text(str(n + 1))
if n == 0:
    pathlib.Path(sys.argv[2]).write_text(str(os.getpid()))
    time.sleep(60)
"""
# Handles SIGTERM like a worker finishing its job: record it, exit 0. With "ignore": never exits on it.
GRACEFUL = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    out.with_suffix(".term").write_text("got SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2] == "ignore" else on_term)
out.write_text("ready")
time.sleep(60)
"""


def py(script: str, *args: str) -> list[str]:
    return [sys.executable, "-c", script, *args]


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize(
    ("restarts", "kwargs", "expected"),
    [
        (0, {}, 1.0),
        (1, {}, 2.0),
        (3, {}, 8.0),
        (6, {}, 60.0),  # 64 capped at 60
        (1000, {}, 60.0),  # no overflow
        (2, {"base": 0.5, "factor": 3.0}, 4.5),
        (4, {"base": 0.1, "factor": 2.0, "cap": 1.0}, 1.0),
        (0, {"base": 0.0}, 0.0),
    ],
)
def test_restart_backoff(restarts: int, kwargs: dict[str, float], expected: float) -> None:
    """The supervisor's restart delays: the one backoff with its defaults (1 s doubling, capped at 60 s)."""
    assert backoff(restarts, **{"base": 1.0, "cap": 60.0, **kwargs}) == pytest.approx(expected)


def test_backoff_rejects_negative() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 0"):
        backoff(-1)


def test_worker_command_template() -> None:
    cmd = worker_command(model="models/m.gguf", burst=True)
    assert cmd[:4] == [sys.executable, "-m", "swarmq", "worker"]
    assert cmd[cmd.index("--gpu") + 1] == "{gpu}" and cmd[cmd.index("--model") + 1] == "models/m.gguf"
    assert cmd[-1] == "--burst"
    sup = Supervisor([0, 3], cmd)
    assert [c.argv[c.argv.index("--gpu") + 1] for c in sup.children] == ["0", "3"]
    assert sup.children[1].argv[sup.children[1].argv.index("--name") + 1] == "swarmq-gpu3"


def test_crashing_child_is_restarted_with_growing_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="swarmq.supervisor")
    sup = Supervisor(
        [0, 1], py(FLAKY, str(tmp_path / "runs-{gpu}"), "2"), base_backoff=0.1, factor=3.0, poll_seconds=0.02
    )
    started = time.monotonic()
    assert sup.run(threading.Event()) == 0
    elapsed = time.monotonic() - started
    for child in sup.children:
        assert child.exit_codes == [1, 1, 0]
        assert child.total_restarts == 2
        assert child.backoffs == pytest.approx([0.1, 0.3])
        assert child.done
    assert (tmp_path / "runs-0").read_text() == "3" and (tmp_path / "runs-1").read_text() == "3"
    assert elapsed >= 0.4  # the backoffs were waited for, not skipped
    restarts = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(restarts) == 4  # two per GPU
    assert any("gpu=1 exited 1; restart 2 in 0.30s" in m for m in restarts)


def test_child_exiting_zero_is_not_restarted(tmp_path: Path) -> None:
    sup = Supervisor([0], py(FLAKY, str(tmp_path / "runs-{gpu}"), "0"), base_backoff=0.01, poll_seconds=0.02)
    assert sup.run(threading.Event()) == 0
    assert sup.children[0].exit_codes == [0] and sup.children[0].total_restarts == 0


def test_max_restarts_gives_up(tmp_path: Path) -> None:
    sup = Supervisor(
        [0],
        py(FLAKY, str(tmp_path / "runs-{gpu}"), "99"),
        base_backoff=0.01,
        max_restarts=2,
        poll_seconds=0.02,
    )
    assert sup.run(threading.Event()) == 1
    assert sup.children[0].exit_codes == [1, 1, 1] and sup.children[0].total_restarts == 2


@pytest.mark.faults
def test_sigkilled_child_is_restarted(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    sup = Supervisor(
        [0], py(SLEEPER, str(tmp_path / "runs"), str(pid_file)), base_backoff=0.05, poll_seconds=0.02
    )
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(sup.run(threading.Event())))
    t.start()
    wait_for(pid_file.exists)
    wait_for(lambda: pid_file.read_text().strip().isdigit())
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    t.join(timeout=10)
    assert not t.is_alive()
    assert result == [0]
    assert sup.children[0].exit_codes == [-signal.SIGKILL, 0]
    assert sup.children[0].total_restarts == 1 and sup.children[0].backoffs == [0.05]


def test_stop_terminates_children_gracefully(tmp_path: Path) -> None:
    sup = Supervisor(
        [0, 1], py(GRACEFUL, str(tmp_path / "child-{gpu}.txt"), "handle"), grace_seconds=10, poll_seconds=0.02
    )
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(sup.run(stop)))
    t.start()
    for g in (0, 1):
        wait_for((tmp_path / f"child-{g}.txt").exists)
    started = time.monotonic()
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive()
    assert time.monotonic() - started < 5  # did not sit out the grace period
    assert result == [0] and not sup.killed
    for g, child in enumerate(sup.children):
        assert (tmp_path / f"child-{g}.term").read_text() == "got SIGTERM"
        assert child.exit_codes == [0] and child.proc is None


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    sup = Supervisor(
        [0], py(GRACEFUL, str(tmp_path / "child-{gpu}.txt"), "ignore"), grace_seconds=0.5, poll_seconds=0.02
    )
    sup.start()
    wait_for((tmp_path / "child-0.txt").exists)
    started = time.monotonic()
    sup.stop()
    assert 0.4 <= time.monotonic() - started < 5
    assert sup.killed and sup.children[0].exit_codes == [-signal.SIGKILL]
    assert not (tmp_path / "child-0.term").exists()


def test_stop_cancels_a_scheduled_restart(tmp_path: Path) -> None:
    sup = Supervisor([0], py(FLAKY, str(tmp_path / "runs-{gpu}"), "99"), base_backoff=30.0, poll_seconds=0.02)
    stop = threading.Event()
    t = threading.Thread(target=sup.run, args=(stop,))
    t.start()
    wait_for(lambda: sup.children[0].restart_at is not None)
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive()
    assert (tmp_path / "runs-0").read_text() == "1"  # the 30 s restart never happened
