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
    candidate does; ``returncode`` is the judge's. What this guarantees and what not: see ``checked``."""
    return _checked(isolation._caps(), candidate, check, entry_point, limits)
