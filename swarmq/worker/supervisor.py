"""The supervisor: one worker process per GPU, restarted with exponential backoff when it crashes.

A worker that exits 0 has finished (``--burst`` found nothing left) and stays down; any other exit, a
signal included (llama.cpp segfault, the OOM killer's SIGKILL), is a crash. Each child runs in its own
process group so that a terminal's Ctrl-C reaches only the supervisor, which then stops the children once,
gracefully: SIGTERM, a grace period for the running job, then SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from swarmq.queue.retry import backoff
from swarmq.settings import DEFAULTS

log = logging.getLogger(__name__)

GPU_PLACEHOLDER = "{gpu}"
DEFAULT_GRACE_SECONDS = DEFAULTS.supervisor_grace_seconds
"""A worker lets its current job run up to SWARMQ_SHUTDOWN_GRACE_SECONDS after SIGTERM; wait longer."""


def worker_command(
    *,
    model: str | None = None,
    burst: bool = False,
    cpu: bool = False,
    slots: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``swarmq worker`` command template for one GPU (or, with ``cpu``, one CPU worker slot);
    ``{gpu}`` is replaced per child."""
    device = ["--cpu"] if cpu else ["--gpu", GPU_PLACEHOLDER]
    kind = "cpu" if cpu else "gpu"
    cmd = [sys.executable, "-m", "swarmq", "worker", *device, "--name", f"swarmq-{kind}{GPU_PLACEHOLDER}"]
    if model is not None:
        cmd += ["--model", model]
    if burst:
        cmd.append("--burst")
    if slots is not None:
        cmd += ["--slots", str(slots)]
    return [*cmd, *extra]


@dataclass
class Child:
    """One GPU's worker process and its restart history (what tests and logs read)."""

    gpu: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    """Restarts since the last healthy run (what the backoff grows with)."""
    total_restarts: int = 0
    restart_at: float | None = None
    """Monotonic time of the scheduled restart; None when none is scheduled."""
    done: bool = False
    exit_codes: list[int] = field(default_factory=list)
    backoffs: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        gpus: Sequence[int],
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        base_backoff: float = 1.0,
        factor: float = 2.0,
        max_backoff: float = 60.0,
        healthy_after: float = 300.0,
        max_restarts: int | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        poll_seconds: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``command`` is an argv template with ``{gpu}`` placeholders. A child that ran ``healthy_after``
        seconds before crashing starts the backoff afresh; ``max_restarts`` (None: unlimited) gives up."""
        if not gpus:
            raise ValueError("no GPU to supervise")
        self.children = [Child(g, [a.replace(GPU_PLACEHOLDER, str(g)) for a in command]) for g in gpus]
        self.env = dict(env) if env is not None else None
        self.base_backoff, self.factor, self.max_backoff = base_backoff, factor, max_backoff
        self.healthy_after, self.max_restarts = healthy_after, max_restarts
        self.grace_seconds, self.poll_seconds = grace_seconds, poll_seconds
        self.clock = clock
        self.killed = False
        """True when stop() had to SIGKILL a child that outlived the grace period."""

    def start(self) -> None:
        for child in self.children:
            if child.proc is None and not child.done:
                self._spawn(child)

    def _spawn(self, child: Child) -> None:
        # process_group=0: the child leads its own group, so signals reach it only through us.
        child.proc = subprocess.Popen(child.argv, env=self.env, process_group=0)
        child.started_at, child.restart_at = self.clock(), None
        log.info("supervisor gpu=%s pid=%s started: %s", child.gpu, child.proc.pid, " ".join(child.argv))

    def poll(self) -> None:
        """One pass: notice exits, schedule restarts with backoff, start the restarts that are due."""
        now = self.clock()
        for child in self.children:
            if child.done:
                continue
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    continue
                child.exit_codes.append(code)
                child.proc = None
                self._exited(child, code, now)
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                child.total_restarts += 1
                self._spawn(child)

    def _exited(self, child: Child, code: int, now: float) -> None:
        if code == 0:
            child.done = True
            log.info("supervisor gpu=%s finished (exit 0)", child.gpu)
            return
        if now - child.started_at >= self.healthy_after:
            child.restarts = 0
        if self.max_restarts is not None and child.total_restarts >= self.max_restarts:
            child.done = True
            log.error(
                "supervisor gpu=%s %s; gave up after %s restarts",
                child.gpu,
                _describe(code),
                child.total_restarts,
            )
            return
        delay = backoff(child.restarts, base=self.base_backoff, factor=self.factor, cap=self.max_backoff)
        child.backoffs.append(delay)
        child.restart_at = now + delay
        log.warning(
            "supervisor gpu=%s %s; restart %s in %.2fs",
            child.gpu,
            _describe(code),
            child.total_restarts + 1,
            delay,
        )

    @property
    def finished(self) -> bool:
        return all(c.done for c in self.children)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to every running child, wait up to the grace period, then SIGKILL the rest.
        Scheduled restarts are cancelled: a stopping supervisor starts nothing."""
        running = [c for c in self.children if c.proc is not None]
        for child in self.children:
            child.restart_at = None
        for child in running:
            assert child.proc is not None
            log.info(
                "supervisor gpu=%s pid=%s: sending %s", child.gpu, child.proc.pid, signal.Signals(sig).name
            )
            _signal(child.proc, sig)
        deadline = self.clock() + self.grace_seconds
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "supervisor gpu=%s pid=%s still running after %.0fs; killing",
                    child.gpu,
                    child.proc.pid,
                    self.grace_seconds,
                )
                _signal(child.proc, signal.SIGKILL)
                child.proc.wait()
                self.killed = True
            child.exit_codes.append(int(child.proc.returncode))
            child.proc = None
        for child in self.children:
            child.done = True

    def run(self, stop_event: threading.Event) -> int:
        """Supervise until every child is done or ``stop_event`` is set (then stop the children).

        Returns 0 when every child finished with exit 0 or stopped within the grace period, else 1."""
        self.start()
        try:
            while not self.finished:
                if stop_event.wait(self.poll_seconds):
                    self.stop()
                    return 1 if self.killed else 0
                self.poll()
        except BaseException:
            self.stop()  # never leave orphaned workers holding GPUs
            raise
        return 0 if all(c.exit_codes and c.exit_codes[-1] == 0 for c in self.children) else 1


def install_signal_handlers(stop_event: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop_event`` (call from the main thread, e.g. in the CLI)."""

    def handler(signum: int, frame: object) -> None:
        log.info("supervisor: received %s; stopping workers", signal.Signals(signum).name)
        stop_event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    """A graceful signal goes to the worker alone (it finishes its job, helpers included); SIGKILL goes to
    its whole process group so nothing it started outlives it."""
    try:
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited {code}"
