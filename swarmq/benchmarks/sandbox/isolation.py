"""What isolation this machine gives every run: which namespaces it allows, which interpreter runs inside
the sandbox (tried with the real harness), and the record of both that every result carries."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache

from swarmq.benchmarks.sandbox import confine
from swarmq.benchmarks.sandbox.checked import _checked
from swarmq.benchmarks.sandbox.limits import SandboxLimits
from swarmq.benchmarks.sandbox.namespaces import _Caps, _hidden_dirs, _libc, _pid_probe, _probe_child


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
    check, program = "def check(f):\n    assert f() == 2\n", "def two():\n    return 1 + 1\n"
    limits = SandboxLimits(wall_seconds=30, cpu_seconds=30)
    whys: list[str] = []
    for uid_ok in dict.fromkeys([os.geteuid() == 0, False]):
        for cand in cands:
            trial = dataclasses.replace(caps, python=cand, uid_ok=uid_ok)
            result = _checked(trial, program, check, "two", limits)
            if result.status == "passed":
                return trial, ""
            last = (result.stderr_tail.strip().splitlines() or [result.status])[-1]
            whys.append(f"{cand} as {'a run uid' if uid_ok else 'own uid'}: {result.status}: {last}")
    skipped = f"; candidates under {', '.join(hidden)} skipped (hidden in the sandbox)" if hidden else ""
    return dataclasses.replace(caps, python=None, uid_ok=False), "; ".join(whys) + skipped


@cache
def _caps() -> _Caps:
    net_why = _probe_child(lambda: confine.check(_libc.unshare(confine.CLONE_NEWNET)))
    ipc_why = _probe_child(lambda: confine.check(_libc.unshare(confine.CLONE_NEWIPC)))
    dirs, probe_dir = _hidden_dirs(), tempfile.mkdtemp(prefix="swarmq-probe-")

    def mount_probe() -> None:
        os.chdir(probe_dir)
        confine.check(_libc.unshare(confine.CLONE_NEWNS))
        confine.private_tmp(probe_dir, list(dirs), 1 << 20, None, {"main.py": b""})

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
    hidden = (
        f"private tmpfs over {', '.join(dirs)} and cwd"
        if mnt_why is None
        else f"shared /tmp etc. ({mnt_why})"
    )
    ipc_cleanup = "; the run uid's SysV objects removed after exit" if uid_ok else ""
    why_same = (
        "not root" if os.geteuid() != 0 else "no interpreter runnable by an unprivileged uid in the sandbox"
    )
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
        "privileges": "no_new_privs",
    }
    return dataclasses.replace(picked, isolation=iso)


def probe_isolation() -> dict[str, str]:
    """What isolation this machine gives every run (probed once per process)."""
    return dict(_caps().isolation)
