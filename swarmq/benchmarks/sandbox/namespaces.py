"""Confinement applied in the child between fork and exec (namespaces, private mounts, a fresh /proc, rlimits,
the uid drop) and the probes that find which of those this machine allows. Linux only, stdlib only."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass

from swarmq.benchmarks.sandbox.limits import SandboxLimits

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
_HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
"""World-writable scratch space, plus /run for the services' unix sockets (Postgres, MySQL)."""
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class _Caps:
    """What this machine allows every run (probed once: ``isolation._caps``)."""

    python: str | None
    """None: no interpreter runs inside this sandbox, so every run is an "error"."""
    uid_ok: bool
    netns: bool
    mountns: bool
    isolation: dict[str, str]
    ipcns: bool = False
    pidns: bool = False


def _check(ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _hidden_dirs() -> tuple[str, ...]:
    return tuple(d for d in _HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d))


def _private_tmp(
    workdir: str, dirs: tuple[str, ...], size: int, uid: int | None, files: dict[str, bytes]
) -> None:
    """In a new mount namespace: empty tmpfs over ``dirs``, and the cwd becomes a tmpfs at ``workdir``
    holding only ``files``, so the code's disk use is bounded by ``size``."""
    # Private first: without it the tmpfs mounts would propagate back to the host.
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None))
    for d in (*dirs, workdir):
        os.makedirs(d, exist_ok=True)  # workdir vanished if it was under a hidden dir
        owner = f",uid={uid},gid={uid},mode=700" if d == workdir and uid is not None else ",mode=1777"
        _check(
            _libc.mount(
                b"tmpfs", d.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size}{owner}".encode()
            )
        )
    os.chdir(workdir)
    for name, data in files.items():
        with open(name, "wb") as f:
            f.write(data)


def _mirror_exit(status: int) -> None:
    """End this process as the waited-for child ended: same exit code, or death by the same signal (so a
    CPU-limit kill still reads as one to ``classify``); never dumps core."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # only if the signal was ignored after all
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _enter_pid_namespace(max_fd: int) -> None:
    """After unshare(CLONE_NEWPID) only children enter the namespace: fork; the child (PID 1 there) mounts a
    fresh /proc and returns to exec; this process waits and exits as the child did. Returns only in the
    child."""
    pid = os.fork()
    if pid == 0:
        _check(_libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None))
        return
    try:
        # Holding subprocess's error pipe (or the parent's other fds) open would stall Popen until the end.
        os.closerange(3, max_fd)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _mirror_exit(os.waitpid(pid, 0)[1])
    finally:
        os._exit(255)


def _preexec(
    caps: _Caps, limits: SandboxLimits, uid: int | None, workdir: str, files: dict[str, bytes]
) -> Callable[[], None]:
    """Runs in the child between fork and exec: namespaces and mounts need root, so ``uid`` is dropped
    last."""
    flags = (
        (_CLONE_NEWNET if caps.netns else 0)
        | (_CLONE_NEWNS if caps.mountns else 0)
        | (_CLONE_NEWIPC if caps.ipcns else 0)
        | (_CLONE_NEWPID if caps.pidns else 0)
    )
    dirs = _hidden_dirs()
    max_fd = os.sysconf("SC_OPEN_MAX")
    cpu = limits.cpu_seconds
    # SIGXCPU at the soft CPU limit, SIGKILL a second later; a PID 1 ignores SIGXCPU, so SIGKILL there.
    rlimits = [
        (resource.RLIMIT_CPU, cpu, cpu if caps.pidns else cpu + 1),
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_CORE, 0, 0),
    ]

    def run() -> None:
        if flags:
            _check(_libc.unshare(flags))
        if caps.mountns:
            _private_tmp(workdir, dirs, limits.file_size_bytes, uid, files)
        if caps.pidns:
            _enter_pid_namespace(max_fd)
        for res, soft, hard in rlimits:
            resource.setrlimit(res, (soft, hard))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        # Set after the uid change, which clears it: if the waiting parent dies, so does the run.
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

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


def _pid_probe() -> None:
    """A PID namespace whose first child can mount its own /proc (in a private mount namespace)."""
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWPID))
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            _check(_libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None))
            os._exit(0)
        except OSError as exc:
            os._exit(exc.errno if exc.errno and exc.errno < 256 else 255)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        raise OSError(
            code if 0 < code < 255 else 0, "mount /proc: " + (os.strerror(code) if code > 0 else "died")
        )
