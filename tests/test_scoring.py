"""Scorers: every canonical HumanEval solution passes and wrong ones fail; diffs are found and checked."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from swarmq.benchmarks.base import Issue
from swarmq.benchmarks.diff import extract_diff, validate_diff
from swarmq.benchmarks.humaneval import load_problems, pass_at_1, score_humaneval, score_samples
from swarmq.benchmarks.registry import get_benchmark
from swarmq.benchmarks.sandbox import SandboxLimits
from swarmq.benchmarks.swebench import score_swebench
from swarmq.errors import DatasetError

FAST = SandboxLimits(wall_seconds=3, cpu_seconds=3)
SHARED_CURATED = Path(__file__).resolve().parents[2] / "shared" / "data" / "swebench_curated.json"


@pytest.fixture(scope="module")
def problems() -> dict[str, dict[str, Any]]:
    return load_problems()


def test_load_problems(problems: dict[str, dict[str, Any]]) -> None:
    assert len(problems) == 164
    assert problems["HumanEval/0"]["entry_point"] == "has_close_elements"
    assert set(problems["HumanEval/163"]) == {"prompt", "entry_point", "test", "canonical_solution"}


@pytest.mark.sandbox
def test_all_canonical_solutions_pass(problems: dict[str, dict[str, Any]]) -> None:
    samples = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]
    results, pass1 = score_samples(samples, problems, workers=2)
    assert [r for r in results if not r["passed"]] == []
    assert pass1 == 1.0
    assert [r["task_id"] for r in results] == list(problems)


WRONG = {
    "HumanEval/0": "    return None\n",
    "HumanEval/53": "    return x + y + 1\n",  # off by one
    "HumanEval/35": "    return sorted(l)[-2]\n",
    "HumanEval/2": "    return number - int(number) + 0.1\n",
}


@pytest.mark.sandbox
@pytest.mark.parametrize("task_id", sorted(WRONG))
def test_wrong_solutions_fail(problems: dict[str, dict[str, Any]], task_id: str) -> None:
    result = score_humaneval(problems[task_id], WRONG[task_id], FAST)
    assert (result.success, result.status) == (False, "failed")
    assert "AssertionError" in result.detail["stderr_tail"]
    assert result.detail["limits"]["wall_seconds"] == 3
    assert result.detail["isolation"]["uid"].isdigit()


@pytest.mark.sandbox
def test_syntax_error_and_hang_are_not_successes(problems: dict[str, dict[str, Any]]) -> None:
    broken = score_humaneval(problems["HumanEval/53"], "    return x +\n", FAST)
    assert (broken.status, "SyntaxError" in broken.detail["stderr_tail"]) == ("failed", True)
    hang = score_humaneval(
        problems["HumanEval/53"], "    while True:\n        pass\n", replace(FAST, wall_seconds=1)
    )
    assert (hang.success, hang.status) == (False, "timeout")


@pytest.mark.sandbox
def test_score_samples_pass_at_1_with_two_samples_per_task(problems: dict[str, dict[str, Any]]) -> None:
    right = {t: problems[t]["canonical_solution"] for t in ("HumanEval/0", "HumanEval/53", "HumanEval/35")}
    samples = [
        {"task_id": "HumanEval/0", "completion": right["HumanEval/0"]},
        {"task_id": "HumanEval/53", "completion": right["HumanEval/53"]},
        {"task_id": "HumanEval/35", "completion": WRONG["HumanEval/35"]},
        {"task_id": "HumanEval/0", "completion": WRONG["HumanEval/0"]},
        {"task_id": "HumanEval/53", "completion": right["HumanEval/53"]},
        {"task_id": "HumanEval/35", "completion": WRONG["HumanEval/35"]},
    ]
    results, pass1 = score_samples(samples, problems, FAST, workers=2)
    assert [r["passed"] for r in results] == [True, True, False, False, True, False]
    assert [r["status"] for r in results][:3] == ["passed", "passed", "failed"]
    assert pass1 == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert set(results[0]) == {"task_id", "passed", "status", "stderr_tail", "seconds"}


def test_pass_at_1_is_mean_of_per_task_fractions() -> None:
    rows = [("a", True), ("a", False), ("a", False), ("a", False), ("b", True)]
    assert pass_at_1([{"task_id": t, "passed": p} for t, p in rows]) == pytest.approx((0.25 + 1.0) / 2)
    assert pass_at_1([]) == 0.0


def test_unknown_task_id_names_it_and_the_line(problems: dict[str, dict[str, Any]]) -> None:
    samples = [{"task_id": "HumanEval/0", "completion": ""}, {"task_id": "HumanEval/999", "completion": ""}]
    with pytest.raises(DatasetError, match=r"line 2: unknown task_id 'HumanEval/999'"):
        score_samples(samples, problems)


@pytest.mark.sandbox
def test_registry_scores_through_each_benchmark(problems: dict[str, dict[str, Any]]) -> None:
    he = problems["HumanEval/53"]
    issue = Issue("HumanEval/53", he["prompt"], "math", data=he)
    assert (
        get_benchmark("humaneval").score(issue, he["canonical_solution"], chat=False, rule="scorer").success
    )
    swebench = get_benchmark("swebench")
    assert swebench.score(Issue("x", "p", "logic"), GOOD, chat=False, rule="valid_diff").status == "valid"
    with pytest.raises(DatasetError, match="mbpp"):
        get_benchmark("mbpp")


GOOD = """diff --git a/src/calc.py b/src/calc.py
index 3b18e51..a2c4f1d 100644
--- a/src/calc.py
+++ b/src/calc.py
@@ -10,6 +10,8 @@ def add(a, b):
 def divide(a, b):
     \"\"\"Divide a by b.\"\"\"
-    return a / b
+    if b == 0:
+        raise ZeroDivisionError("b must not be zero")
+    return a / b


 def mod(a, b):
"""


def test_extract_fenced_diff_with_prose() -> None:
    text = f"The bug is in `divide`. Here is a fix:\n\n```diff\n{GOOD}```\n\nThis raises a clear error."
    assert extract_diff(text) == GOOD
    check = validate_diff(GOOD)
    assert (check.valid, check.files, check.added, check.removed, check.hunks) == (
        True,
        ["src/calc.py"],
        3,
        1,
        1,
    )


def test_extract_patch_and_plain_fences() -> None:
    assert extract_diff(f"```patch\n{GOOD}```") == GOOD
    assert extract_diff(f"Some code first:\n```python\nx = 1\n```\nthen\n```\n{GOOD}```\n") == GOOD


def test_extract_raw_diff_drops_trailing_prose() -> None:
    text = f"I changed one function.\n{GOOD}\nLet me know if this helps!\n"
    assert extract_diff(text) == GOOD


def test_extract_joins_one_fence_per_file() -> None:
    other = GOOD.replace("src/calc.py", "src/other.py")
    diff = extract_diff(f"First:\n```diff\n{GOOD}```\nSecond:\n```diff\n{other}```\n")
    assert diff is not None
    assert validate_diff(diff).files == ["src/calc.py", "src/other.py"]


def test_truncated_by_max_tokens_is_invalid_with_reason() -> None:
    cut = GOOD[: GOOD.index("+        raise")]
    result = score_swebench({}, f"Here you go:\n```diff\n{cut}")  # no closing fence: max_tokens hit
    assert (result.success, result.status) == (False, "invalid")
    assert result.detail["reason"].startswith("truncated: hunk 1 in src/calc.py ends early")


def test_hunk_line_count_mismatch_is_invalid() -> None:
    too_many = GOOD.replace("@@ -10,6 +10,8 @@", "@@ -10,6 +10,7 @@")
    check = validate_diff(too_many)
    assert not check.valid and "body longer than its @@ line counts" in check.reason
    too_few = GOOD.replace("@@ -10,6 +10,8 @@", "@@ -10,8 +10,10 @@") + "@@ -40,1 +41,1 @@\n-a\n+b\n"
    assert "body shorter than its @@ line counts" in validate_diff(too_few).reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("--- a/x.py\n@@ -1 +1 @@\n-a\n+b\n", "'---' header not followed by '+++'"),
        ("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @ broken\n-a\n+b\n", "malformed hunk header"),
        ("--- a/x.py\n+++ b/x.py\n", "has no hunks"),
        ("--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,1 @@\n same\n", "changes nothing"),
        ("@@ -1 +1 @@\n-a\n+b\n", "hunk before any file header"),
    ],
)
def test_malformed_diffs(text: str, reason: str) -> None:
    check = validate_diff(text)
    assert not check.valid
    assert reason in check.reason


@pytest.mark.parametrize(
    "text", ["", "   \n", "I could not find the bug, sorry.", "```python\nprint(1)\n```"]
)
def test_no_diff_is_empty(text: str) -> None:
    result = score_swebench({}, text)
    assert (result.success, result.status, result.detail["files"]) == (False, "empty", [])


def test_new_and_deleted_files() -> None:
    diff = (
        "diff --git a/new.py b/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n"
        "+a = 1\n+b = 2\ndiff --git a/old.py b/old.py\ndeleted file mode 100644\n--- a/old.py\n"
        "+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n\\ No newline at end of file\n"
    )
    check = validate_diff(diff)
    assert (check.valid, check.files, check.added, check.removed, check.hunks) == (
        True,
        ["new.py", "old.py"],
        2,
        1,
        2,
    )


def curated() -> dict[str, Any]:
    path = (
        SHARED_CURATED if SHARED_CURATED.exists() else files("swarmq").joinpath("data/swebench_curated.json")
    )
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_all_curated_gold_patches_validate() -> None:
    issues = curated()["issues"]
    assert len(issues) == 50
    for issue in issues:
        result = score_swebench(issue, f"The fix:\n```diff\n{issue['patch']}```\n")
        assert result.status == "valid", (issue["instance_id"], result.detail["reason"])
        assert result.detail["same_files"] is True
        assert result.detail["added"] + result.detail["removed"] > 0


@pytest.mark.sandbox
def test_chat_replies_become_prompt_completions() -> None:
    from swarmq.benchmarks.humaneval import completion_from_reply, load_problems, score_humaneval

    problem = load_problems()["HumanEval/2"]  # truncate_number
    reply = (
        "Here is the solution:\n```python\ndef truncate_number(number: float) -> float:\n"
        "    return number % 1.0\n```\nIt returns the decimal part."
    )
    completion = completion_from_reply(problem, reply)
    assert completion == "    return number % 1.0\n"  # the function's body: no prose, no second signature
    assert score_humaneval(problem, completion).status == "passed"
    body_only = "```python\n    return number % 1.0\n```"
    assert completion_from_reply(problem, body_only) == "    return number % 1.0\n"
    assert score_humaneval(problem, completion_from_reply(problem, body_only)).status == "passed"
    wrong = "```python\ndef truncate_number(number: float) -> float:\n    return 0.0\n```"
    assert score_humaneval(problem, completion_from_reply(problem, wrong)).status == "failed"
