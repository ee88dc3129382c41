"""Which confinement this machine allows (the probes, each in a forked child: namespaces must never touch
this process) and the launcher command that applies it to one run (``confine``). Linux only, stdlib only."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from swarmq.benchmarks.sandbox import confine
from swarmq.benchmarks.sandbox.confine import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, check
from swarmq.benchmarks.sandbox.limits import SandboxLimits

_HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
"""World-writable scratch space, plus /run for the services' unix sockets (Postgres, MySQL)."""
_libc = confine.libc
_PROC_FLAGS = confine.MS_NOSUID | confine.MS_NODEV | confine.MS_NOEXEC


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


def _hidden_dirs() -> tuple[str, ...]:
    return tuple(d for d in _HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d))


@cache
def _launcher_source() -> str:
    """``confine``'s text: every sandboxed process starts as it, with ``-I -S -c``."""
    with open(confine.__file__, encoding="utf-8") as f:
        return f.read()


def _launcher(
    caps: _Caps, limits: SandboxLimits, uid: int | None, workdir: str, files: list[str]
) -> list[str]:
    """The command that starts a run's process confined: ``caps.python`` running the launcher, which applies
    the namespaces, mounts, rlimits and ``uid`` this machine allows and then execs what follows it (the
    caller appends the program's command line). Namespaces and mounts need root, so ``uid`` is dropped
    last."""
    assert caps.python is not None
    flags = (
        (CLONE_NEWNET if caps.netns else 0)
        | (CLONE_NEWNS if caps.mountns else 0)
        | (CLONE_NEWIPC if caps.ipcns else 0)
        | (CLONE_NEWPID if caps.pidns else 0)
    )
    cpu = limits.cpu_seconds
    # SIGXCPU at the soft CPU limit, SIGKILL a second later; a PID 1 ignores SIGXCPU, so SIGKILL there.
    rlimits = [
        (resource.RLIMIT_CPU, cpu, cpu if caps.pidns else cpu + 1),
        (resource.RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    spec = confine.spec(
        flags=flags,
        hidden=list(_hidden_dirs()) if caps.mountns else [],
        workdir=workdir,
        files=files if caps.mountns else [],
        tmpfs_bytes=limits.file_size_bytes,
        pidns=caps.pidns,
        rlimits=rlimits,
        uid=uid,
        parent=os.getpid(),
    )
    return [caps.python, "-I", "-S", "-c", _launcher_source(), spec]


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
    check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID))
    check(_libc.mount(None, b"/", None, confine.MS_REC | confine.MS_PRIVATE, None))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            check(_libc.mount(b"proc", b"/proc", b"proc", _PROC_FLAGS, None))
            os._exit(0)
        except OSError as exc:
            os._exit(exc.errno if exc.errno and exc.errno < 256 else 255)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        raise OSError(
            code if 0 < code < 255 else 0, "mount /proc: " + (os.strerror(code) if code > 0 else "died")
        )
