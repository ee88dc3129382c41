"""The verdicts: a plain script's exit status, and a checked run's report (pure functions)."""

from __future__ import annotations

import signal

from swarmq.benchmarks.sandbox.limits import Status


def classify(returncode: int, timed_out: bool) -> Status:
    """Exit status → verdict; a CPU-limit kill (SIGXCPU, or SIGKILL at the hard limit) counts as a timeout."""
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    return "passed" if returncode == 0 else "failed"


def out_of_cpu(returncode: int, cpu_seconds: float | None, limit: int) -> bool:
    """Whether a process ended at its CPU limit (SIGXCPU, or SIGKILL at the hard limit), not by another
    hand: a SIGKILL counts only when it had used (nearly) all its CPU time (None: not known, so it counts)."""
    if returncode == -signal.SIGXCPU:
        return True
    return returncode == -signal.SIGKILL and (cpu_seconds is None or cpu_seconds >= 0.9 * limit)


def report_parts(report: bytes) -> tuple[bool, bool, bytes, str]:
    """The judge's report (see ``harness``): whether it started, whether the candidate's harness started
    (before any of the candidate's code ran), the final code (b"" when none was written) and the why of an
    ``E``."""
    up = report.startswith(b"S")
    started = up and report[1:2] == b"R"
    rest = report[2:] if started else report[1:]
    final = rest[:1] if up else b""
    why = rest[1:].decode("utf-8", errors="replace") if final == b"E" else ""
    return up, started, final, why


def verdict(report: bytes, timed_out: bool, judge_out_of_cpu: bool, candidate_out_of_cpu: bool) -> Status:
    """The checked run's verdict, decided by the judge alone: "passed" only when it wrote ``P`` (its check
    returned with no broken call) within the wall limit. No candidate ever started, or an ``E`` (the check
    cannot load, an argument cannot cross), is an "error": the scorer's failure, not the model's. The wall
    limit, or either side's end at its CPU limit (the candidate's only when the judge saw it end), is a
    timeout; anything else the candidate did, the judge's death by another hand included, is "failed"."""
    up, started, final, _ = report_parts(report)
    if not (up and started) or final == b"E":
        return "error"
    if timed_out or judge_out_of_cpu or (final == b"C" and candidate_out_of_cpu):
        return "timeout"
    return "passed" if final == b"P" else "failed"
