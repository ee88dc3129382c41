"""One sandboxed script run: write main.py to a fresh dir, start it confined (through the ``confine``
launcher, spawned: this process is never forked), wait for it while reading its output, kill whatever it
left, and collect the output's tails; and the helpers a checked run (``checked``) shares with it."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Literal

from swarmq.benchmarks.sandbox import cancel
from swarmq.benchmarks.sandbox.limits import SandboxLimits, SandboxResult
from swarmq.benchmarks.sandbox.namespaces import _Caps, _launcher, _libc
from swarmq.benchmarks.sandbox.output import Output

_UID_BASE = 1_000_000
"""Run uids are _UID_BASE + (pid << 7 | counter): no passwd entry, unique among live runs (a checked run
takes two)."""
_IPC_RMID = 0
_NO_PIDFD_POLL_SECONDS = 0.05
_KILL_AS_UID = (
    "import os, sys; u = int(sys.argv[1]); os.setgroups([]); os.setgid(u); os.setuid(u); os.kill(-1, 9)"
)
"""kill(-1) as the run uid reaches exactly that uid's processes (this one excepted)."""
_uid_counter = itertools.count()
Waited = Literal["exited", "timeout", "cancelled"]


@dataclass(frozen=True)
class _Run:
    """One script launch."""

    returncode: int
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    isolation: dict[str, str]


def _wait(
    proc: subprocess.Popen[bytes], seconds: float, signal_: cancel.Signal | None, output: Output
) -> Waited:
    """Until the program exits, ``seconds`` pass, or ``signal_`` is set (looked at every
    `cancel.POLL_SECONDS`), reading its ``output`` meanwhile. Does not reap, so the group id cannot be reused
    before the group is killed."""
    end = time.monotonic() + seconds
    slice_ = seconds if signal_ is None else min(seconds, cancel.POLL_SECONDS)
    try:
        fd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = None
    try:
        while True:
            if signal_ is not None and signal_.is_set():
                return "cancelled"
            left = end - time.monotonic()
            if left <= 0:
                return "timeout"
            if _exited(proc, fd, min(slice_, left), output):
                return "exited"
    finally:
        if fd is not None:
            os.close(fd)


def _exited(proc: subprocess.Popen[bytes], fd: int | None, seconds: float, output: Output) -> bool:
    if fd is not None:
        return output.pump(seconds, fd)
    # No pidfd (an old kernel): Popen's own poll, which reaps.
    output.pump(min(seconds, _NO_PIDFD_POLL_SECONDS))
    return proc.poll() is not None


def _remove_sysv_objects(uid: int) -> None:
    """Without an IPC namespace, SysV objects outlive their creator: remove those the run uid made or owns."""
    for kind, rm in (("shm", _libc.shmctl), ("sem", _libc.semctl), ("msg", _libc.msgctl)):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = [line.split() for line in f]
        except (OSError, ValueError):
            continue
        cols = [header.index(name) for name in ("uid", "cuid")]
        ident = 1  # the second column: shmid, semid or msqid
        for row in rows:
            if any(row[c] == str(uid) for c in cols):
                if kind == "sem":
                    rm(int(row[ident]), 0, _IPC_RMID)
                else:
                    rm(int(row[ident]), _IPC_RMID, None)


def _kill_all(caps: _Caps, pgid: int, uid: int | None) -> None:
    """Kill leftovers: the process group, then (children may setsid) every process of the run uid. In a PID
    namespace the kernel kills every process in it once its first process is killed, so no sweep is needed."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if uid is not None and caps.python is not None and not caps.pidns:
        cmd = [caps.python, "-I", "-S", "-c", _KILL_AS_UID, str(uid)]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd, timeout=30, env={}, capture_output=True)
    if uid is not None and not caps.ipcns:
        _remove_sysv_objects(uid)


def _drain(fd: int) -> bytes:
    """What is in the pipe now; a leftover grandchild may hold its write end, so never wait for EOF."""
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def _run_isolation(caps: _Caps, limits: SandboxLimits) -> tuple[int | None, dict[str, str]]:
    """A fresh run uid (None: the run keeps this process's uid) and the isolation record for this run."""
    uid = _UID_BASE + ((os.getpid() << 7) | (next(_uid_counter) & 127)) if caps.uid_ok else None
    isolation = dict(caps.isolation)
    isolation["uid"] = str(uid if uid is not None else os.getuid())
    nproc = "not enforced: runs as root" if uid is None and os.geteuid() == 0 else str(limits.max_processes)
    isolation["nproc"] = nproc
    return uid, isolation


def _write_main(workdir: str, program: str, uid: int | None, name: str = "main.py") -> dict[str, bytes]:
    """``name`` = ``program`` in ``workdir``, both owned by ``uid``; returns the files the cwd must hold. A
    lone surrogate is written as such (surrogatepass), so the interpreter rejects it, as ``compile`` would."""
    files = {name: program.encode("utf-8", errors="surrogatepass")}
    with open(os.path.join(workdir, name), "wb") as f:
        f.write(files[name])
    if uid is not None:
        os.chown(workdir, uid, uid)
        os.chown(os.path.join(workdir, name), uid, uid)
    return files


def _launch(caps: _Caps, program: str, limits: SandboxLimits) -> _Run | str:
    """Run main.py = ``program`` in the sandbox as a script. A str is why nothing could be started at all.
    Raises `cancel.Cancelled` once the caller's signal is set (`cancel.cancelling`), after the cleanup."""
    uid, isolation = _run_isolation(caps, limits)
    if caps.python is None:
        return "no interpreter runs inside the sandbox"
    start = time.monotonic()
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="swarmq-sandbox-"))
    try:
        files = _write_main(workdir, program, uid)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"}
        with Output(2, limits.output_bytes) as output:
            try:
                proc = subprocess.Popen(
                    [*_launcher(caps, limits, uid, workdir, list(files)), caps.python, "-I", "-S", "main.py"],
                    stdin=subprocess.DEVNULL,
                    stdout=output.writers[0],
                    stderr=output.writers[1],
                    cwd=workdir,
                    env=env,
                    start_new_session=True,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return str(exc)
            finally:
                output.started()
            signal_ = cancel.current()
            try:
                waited = _wait(proc, limits.wall_seconds, signal_, output)
            finally:
                _kill_all(caps, proc.pid, uid)
                returncode = proc.wait()
            if waited == "cancelled" and signal_ is not None:
                raise cancel.Cancelled(signal_.reason)
            output.finish()
            seconds = time.monotonic() - start
            return _Run(returncode, waited == "timeout", output.text(0), output.text(1), seconds, isolation)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _error(caps: _Caps, why: str) -> SandboxResult:
    return SandboxResult("error", None, "", f"sandbox: {why}", 0.0, dict(caps.isolation))
