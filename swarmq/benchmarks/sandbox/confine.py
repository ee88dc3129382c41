"""The launcher every sandboxed process starts as: a fresh interpreter (``-I -S -c`` this file's text) that
confines itself (namespaces, private mounts, a fresh /proc, rlimits, the uid drop, no_new_privs) and then
execs the program. Starting it is a plain spawn (vfork + exec) of a small process, so the scoring process,
which may hold a model and its KV cache, is never forked: a fork copies its page tables and makes its next
writes fault, for every run. Stdlib only, and no swarmq import: this text runs outside any venv.

Command line: ``SPEC ARGV...``; SPEC is the JSON of `spec` (below). Any failure before the exec ends the
launcher with `FAILED` and one ``sandbox: confine: ...`` line on stderr: the program never runs unconfined.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported in the launcher: each run pays for every import
    from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
FAILED = 125
"""The launcher's exit status when it could not confine the program (nothing of the program ran)."""
libc = ctypes.CDLL(None, use_errno=True)


def check(ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def spec(
    *,
    flags: int,
    hidden: list[str],
    workdir: str,
    files: list[str],
    tmpfs_bytes: int,
    pidns: bool,
    rlimits: list[tuple[int, int, int]],
    uid: int | None,
    parent: int,
) -> str:
    """The launcher's first argument: unshare ``flags``; with a mount namespace (CLONE_NEWNS) a private tmpfs
    of ``tmpfs_bytes`` over each ``hidden`` dir and over ``workdir``, holding only ``files`` (read from
    ``workdir`` first); with ``pidns`` a fresh /proc; then ``rlimits`` (resource, soft, hard), the ``uid``
    (None: keep this one), death with ``parent`` (the scoring process's pid) and no_new_privs."""
    return json.dumps(
        {
            "flags": flags,
            "hidden": hidden,
            "workdir": workdir,
            "files": files,
            "tmpfs_bytes": tmpfs_bytes,
            "pidns": pidns,
            "rlimits": rlimits,
            "uid": uid,
            "parent": parent,
        }
    )


def private_tmp(workdir: str, dirs: list[str], size: int, uid: int | None, files: dict[str, bytes]) -> None:
    """In a new mount namespace: empty tmpfs over ``dirs``, and the cwd becomes a tmpfs at ``workdir``
    holding only ``files``, so the code's disk use is bounded by ``size``."""
    # Private first: without it the tmpfs mounts would propagate back to the host.
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None))
    for d in (*dirs, workdir):
        os.makedirs(d, exist_ok=True)  # workdir vanished if it was under a hidden dir
        owner = f",uid={uid},gid={uid},mode=700" if d == workdir and uid is not None else ",mode=1777"
        opts = f"size={size}{owner}".encode()
        check(libc.mount(b"tmpfs", d.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts))
    os.chdir(workdir)
    for name, data in files.items():
        with open(name, "wb") as f:
            f.write(data)


def mirror_exit(status: int) -> None:
    """End this process as the waited-for child ended: same exit code, or death by the same signal (so a
    CPU-limit kill still reads as one to ``classify``); never dumps core."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # only if the signal was ignored after all
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies; if ``parent`` is already gone (this process was
    reparented before the request took effect), die now."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent and os.getppid() != parent:
        os._exit(FAILED)


def enter_pid_namespace() -> None:
    """After unshare(CLONE_NEWPID) only children enter the namespace: fork (a small process: the launcher);
    the child (PID 1 there) mounts a fresh /proc and returns to exec; this process waits (still to die with
    the scoring process) and exits as the child did. Returns only in the child."""
    pid = os.fork()
    if pid == 0:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the waiter; set again after the uid drop
        check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None))
        return
    try:
        # Holding the run's pipes open would keep them from their readers' EOF: stdio only.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        mirror_exit(os.waitpid(pid, 0)[1])
    finally:
        os._exit(255)


def confine(s: dict[str, Any]) -> None:
    """Apply the spec to this process (see `spec`); returns in the process that is to exec the program."""
    workdir, uid = s["workdir"], s["uid"]
    files = {}
    for name in s["files"]:  # read before the tmpfs covers them
        with open(os.path.join(workdir, name), "rb") as f:
            files[name] = f.read()
    die_with(s["parent"])
    if s["flags"]:
        check(libc.unshare(s["flags"]))
    if s["flags"] & CLONE_NEWNS:
        private_tmp(workdir, s["hidden"], s["tmpfs_bytes"], uid, files)
    if s["pidns"]:
        enter_pid_namespace()
    for res, soft, hard in s["rlimits"]:
        resource.setrlimit(res, (soft, hard))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    # After the uid change, which clears it: if the waiting parent dies, so does the run. In a PID namespace
    # the parent is the waiter (outside it: getppid() is 0 here), which dies with the scoring process.
    die_with(0 if s["pidns"] else s["parent"])
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))


def main(argv: list[str]) -> None:
    try:
        confine(json.loads(argv[1]))
        os.execv(argv[2], argv[2:])
    except BaseException as exc:  # nothing of the program has run: say why, once, and end
        with contextlib.suppress(OSError):
            os.write(2, f"sandbox: confine: {type(exc).__name__}: {exc}\n".encode(errors="replace"))
        os._exit(FAILED)


if __name__ == "__main__":
    main(sys.argv)
