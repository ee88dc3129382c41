"""Run untrusted Python (model completions) in a limited subprocess and say honestly how it was isolated.

Layers, each used only where the machine allows it (probed once, cached): a network namespace; a mount
namespace with private tmpfs over the world-writable dirs, /run and the cwd; an unprivileged uid unique to
the run; rlimits; a new session whose group (and every process of the uid) is killed afterwards; a scrubbed
environment; a fresh working directory. ``isolation`` in every result records what was really applied.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import IO, Any, Literal

Status = Literal["passed", "failed", "timeout", "error"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 2, 4, 16384, 1 << 18
_HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
"""World-writable scratch space, plus /run for the services' unix sockets (Postgres, MySQL)."""
_UID_BASE = 1_000_000
"""Run uids are _UID_BASE + (pid << 6 | counter): no passwd entry, unique among live runs."""
_uid_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits; small values in tests keep hostile code cheap for the test machine."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    """RLIMIT_AS: address space, so a big allocation raises MemoryError instead of swapping the host."""
    file_size_bytes: int = 16 << 20
    """RLIMIT_FSIZE; also bounds the captured stdout/stderr files and each private tmpfs (cwd included)."""
    max_processes: int = 64
    """RLIMIT_NPROC; only enforced for the unprivileged run uid (root ignores it)."""
    output_bytes: int = 8 << 10
    """How much of the end of stdout and stderr is kept."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened; ``isolation`` says which layers were really applied (JSON-safe strings)."""

    status: Status
    returncode: int | None
    stdout_tail: str
    stderr_tail: str
    seconds: float
    isolation: dict[str, str]


@dataclass(frozen=True)
class _Caps:
    python: str
    uid_ok: bool
    netns: bool
    mountns: bool
    isolation: dict[str, str]


def _check(ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _hidden_dirs() -> tuple[str, ...]:
    return tuple(d for d in _HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d))


def _private_tmp(workdir: str, dirs: tuple[str, ...], size: int, uid: int | None) -> None:
    """In a new mount namespace: empty tmpfs over ``dirs``, and the cwd becomes a tmpfs at ``workdir``
    holding only main.py, so the code's disk use is bounded by ``size``."""
    with open("main.py", "rb") as f:  # cwd is still the host's workdir here
        program = f.read()
    # Private first: without it the tmpfs mounts would propagate back to the host.
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None))
    for d in (*dirs, workdir):
        os.makedirs(d, exist_ok=True)  # workdir vanished if it was under a hidden dir
        owner = f",uid={uid},gid={uid},mode=700" if d == workdir and uid is not None else ",mode=1777"
        _check(_libc.mount(b"tmpfs", d.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size}{owner}".encode()))
    os.chdir(workdir)
    with open("main.py", "wb") as f:
        f.write(program)


def _preexec(caps: _Caps, limits: SandboxLimits, uid: int | None, workdir: str) -> Callable[[], None]:
    """Runs in the child between fork and exec: namespaces and mounts need root, so ``uid`` is dropped to last."""
    flags = (_CLONE_NEWNET if caps.netns else 0) | (_CLONE_NEWNS if caps.mountns else 0)
    dirs = _hidden_dirs()
    cpu = limits.cpu_seconds
    rlimits = [  # SIGXCPU at the soft CPU limit, SIGKILL a second later
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_CORE, 0, 0),
    ]

    def run() -> None:
        if flags:
            _check(_libc.unshare(flags))
        if caps.mountns:
            _private_tmp(workdir, dirs, limits.file_size_bytes, uid)
        for res, soft, hard in rlimits:
            resource.setrlimit(res, (soft, hard))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return run


def _probe_child(fn: Callable[[], None]) -> str | None:
    """Run ``fn`` in a forked child (namespaces must never touch this process); None if it worked."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            fn()
            os._exit(0)
        except OSError as exc:
            os._exit(exc.errno if exc.errno and exc.errno < 256 else 255)
        except BaseException:
            os._exit(255)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return None if code == 0 else (os.strerror(code) if 0 < code < 255 else f"exit {code}")


def _as_uid(uid: int) -> dict[str, Any]:
    """subprocess arguments for a helper run as ``uid`` (set in C by subprocess, no preexec_fn needed)."""
    return {"user": uid, "group": uid, "extra_groups": [], "env": {}, "capture_output": True}


def _pick_python(own: str) -> tuple[str, bool, str]:
    """(interpreter, can drop to an unprivileged uid, why not): the first candidate that uid can run."""
    if os.geteuid() != 0:
        return own, False, "not root, cannot switch to an unprivileged uid"
    whys = []
    for cand in dict.fromkeys([own, os.path.realpath(own), shutil.which("python3", path="/usr/bin:/bin")]):
        if cand:  # e.g. a venv under /root is not reachable by other uids; the system python usually is
            cmd = [cand, "-I", "-S", "-c", "import json, math"]
            try:
                subprocess.run(cmd, check=True, timeout=30, **_as_uid(_UID_BASE))
                return cand, True, ""
            except (OSError, subprocess.SubprocessError) as exc:
                whys.append(f"{cand}: {exc}")
    return own, False, "no interpreter runnable by an unprivileged uid (" + "; ".join(whys) + ")"


@cache
def _caps() -> _Caps:
    python, uid_ok, why = _pick_python(sys.executable or shutil.which("python3") or "python3")
    version = subprocess.run([python, "-I", "-S", "-V"], capture_output=True, text=True).stdout.strip()
    net_why = _probe_child(lambda: _check(_libc.unshare(_CLONE_NEWNET)))
    dirs, probe_dir = _hidden_dirs(), tempfile.mkdtemp(prefix="swarmq-probe-")
    open(os.path.join(probe_dir, "main.py"), "w").close()

    def mount_probe() -> None:
        os.chdir(probe_dir)
        _check(_libc.unshare(_CLONE_NEWNS))
        _private_tmp(probe_dir, dirs, 1 << 20, None)

    try:
        mnt_why = _probe_child(mount_probe)
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    hidden = f"private tmpfs over {', '.join(dirs)} and cwd" if mnt_why is None else f"shared /tmp etc. ({mnt_why})"
    iso = {
        # "unprivileged": a uid unique to the run with no passwd entry, recorded per run under "uid".
        "user": "unprivileged" if uid_ok else f"same: {why}",
        "python": f"{python} ({version})",
        "network": "namespace" if net_why is None else f"none: unshare(CLONE_NEWNET): {net_why}",
        "filesystem": f"{hidden}; cwd a fresh temp dir; world-readable files stay readable",
        "processes": "group" + (" and run uid" if uid_ok else "") + " killed after exit",
        "environment": "scrubbed to PATH, HOME, LANG",
    }
    return _Caps(python, uid_ok, net_why is None, mnt_why is None, iso)


def probe_isolation() -> dict[str, str]:
    """What isolation this machine gives every run (probed once per process)."""
    return dict(_caps().isolation)


def _tail(f: IO[bytes], n: int) -> str:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - n))
    return f.read().decode("utf-8", errors="replace")


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """True on timeout. Does not reap, so the group id cannot be reused before the group is killed."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(seconds)
            return False
        except subprocess.TimeoutExpired:
            return True
    try:
        return not select.select([fd], [], [], seconds)[0]
    finally:
        os.close(fd)


def _kill_all(caps: _Caps, pgid: int, uid: int | None) -> None:
    """Kill leftovers: the process group, then (children may setsid) every process of the run uid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if uid is not None:  # kill(-1) as the uid reaches exactly that uid's processes, itself included
        cmd = [caps.python, "-I", "-S", "-c", "import os; os.kill(-1, 9)"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd, timeout=30, **_as_uid(uid))


def classify(returncode: int, timed_out: bool) -> Status:
    """Exit status → verdict; a CPU-limit kill (SIGXCPU, or SIGKILL at the hard limit) counts as a timeout."""
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    return "passed" if returncode == 0 else "failed"


def run_python(code: str, limits: SandboxLimits) -> SandboxResult:
    """Run ``code`` as a script under ``limits``; never raises for anything the code does."""
    caps = _caps()
    uid = _UID_BASE + ((os.getpid() << 6) | (next(_uid_counter) & 63)) if caps.uid_ok else None
    isolation = dict(caps.isolation)
    isolation["uid"] = str(uid if uid is not None else os.getuid())
    nproc = "not enforced: runs as root" if uid is None and os.geteuid() == 0 else str(limits.max_processes)
    isolation["nproc"] = nproc
    start = time.monotonic()
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="swarmq-sandbox-"))
    try:
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(os.path.join(workdir, "main.py"), uid, uid)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    [caps.python, "-I", "-S", "main.py"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=workdir,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_preexec(caps, limits, uid, workdir),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return SandboxResult("error", None, "", f"sandbox: {exc}", time.monotonic() - start, isolation)
            timed_out = _wait(proc, limits.wall_seconds)
            _kill_all(caps, proc.pid, uid)
            returncode = proc.wait()
            seconds = time.monotonic() - start
            status = classify(returncode, timed_out)
            stdout, stderr = _tail(out, limits.output_bytes), _tail(err, limits.output_bytes)
        return SandboxResult(status, returncode, stdout, stderr, seconds, isolation)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
