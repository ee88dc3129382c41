"""The verdicts: a plain script's exit status, and a checked run's report pipe (pure functions)."""

from __future__ import annotations

import signal

from swarmq.benchmarks.sandbox.limits import Status


def classify(returncode: int, timed_out: bool) -> Status:
    """Exit status → verdict; a CPU-limit kill (SIGXCPU, or SIGKILL at the hard limit) counts as a timeout."""
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    return "passed" if returncode == 0 else "failed"


def verdict(returncode: int, timed_out: bool, report: bytes, nonce: bytes) -> Status:
    """The checked run's verdict: the harness writes b"S" before the program runs and the nonce only after
    ``check`` returned, so exit status 0 alone means nothing; no "S" means the scorer never ran the program
    (an "error", never the model's failure). A kill at the wall or CPU limit is a timeout whatever was
    written."""
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if not report.startswith(b"S"):
        return "error"
    return "passed" if nonce in report[1:] else "failed"
