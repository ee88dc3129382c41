"""SWE-bench: the curated 50-issue set of the original study (bundled) or any SWE-bench-shaped rows.

The model is asked for a unified diff; scoring checks that a well-formed one was produced (`diff.py`), and
the official harness's verdict comes back later through `harness.py` (`swarmq import-eval`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from swarmq.benchmarks.base import Issue, Prompt, Score
from swarmq.benchmarks.diff import extract_diff, validate_diff
from swarmq.benchmarks.humaneval import chat_prompt
from swarmq.swarm.state import Example

DEFAULT_CATEGORY = "other"
"""Category of a row without one (hub SWE-bench sets carry no category column)."""

_TEXT_FIELDS = ("base_commit", "patch", "test_patch", "hints_text")
ASK = "Write a patch in unified diff format (git diff) that resolves the issue."


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def study_rows(document: Any) -> list[dict[str, Any]] | None:
    """The ``issues`` list of the study's ``{"metadata": ..., "issues": [...]}`` layout, or None."""
    if isinstance(document, dict) and isinstance(document.get("issues"), list):
        return list(document["issues"])
    return None


class SWEBench:
    """Issue = one GitHub issue; the scorer checks the proposed patch, the harness decides ``resolved``."""

    name: str = "swebench"
    id_field: str = "instance_id"
    export_per_stream: bool = True
    required_fields: tuple[str, ...] = ("instance_id", "repo", "problem_statement")

    def bundled_rows(self) -> list[dict[str, Any]]:
        text = files("swarmq").joinpath("data", "swebench_curated.json").read_text()
        rows = study_rows(json.loads(text))
        assert rows is not None, "bundled swebench_curated.json lost its 'issues' list"
        return rows

    def to_issue(self, row: dict[str, Any], category_map: dict[str, str]) -> Issue:
        category = _text(row, "category") or DEFAULT_CATEGORY
        if category not in category_map:
            known = ", ".join(sorted(category_map))
            raise ValueError(f"category {category!r} is not in dataset.category_map ({known})")
        data = {key: _text(row, key) for key in _TEXT_FIELDS}
        data.update(repo=row["repo"], category=category)
        return Issue(
            instance_id=row["instance_id"],
            problem=row["problem_statement"],
            task_type=category_map[category],
            category=category,
            repo=row["repo"],
            data=data,
        )

    def prompt(self, issue: Issue, examples: Sequence[Example], *, chat: bool, system: str | None) -> Prompt:
        ids = tuple(e.id for e in examples)
        if not chat:
            parts = [system or f"{ASK} Answer with the diff only.", ""]
            for e in examples:
                parts += ["### Task", e.problem, "### Patch", f"```diff\n{e.solution.strip()}\n```", ""]
            parts += ["### Task", task_text(issue), "### Patch", "```diff\n"]
            return Prompt("\n".join(parts), None, ids)
        messages = [{"role": "system", "content": system or f"You are a software engineer. {ASK}"}]
        for e in examples:
            messages.append({"role": "user", "content": e.problem})
            messages.append({"role": "assistant", "content": f"```diff\n{e.solution.strip()}\n```"})
        messages.append({"role": "user", "content": task_text(issue) + "\n" + ASK})
        return chat_prompt(messages, ids)

    def stops(self, chat: bool) -> tuple[str, ...]:
        return ()

    def example(self, example_id: str, issue: Issue, completion: str, *, chat: bool) -> Example:
        """The task framed as prompts show it, and the extracted diff as the solution."""
        return Example(example_id, task_text(issue), extract_diff(completion) or completion, issue.task_type)

    def score(self, issue: Issue, completion: str, *, chat: bool) -> Score:
        return score_swebench(issue.data, completion)

    def export_line(self, row: dict[str, Any], experiment: str) -> dict[str, Any]:
        """The harness's predictions format: one patch per instance."""
        return {"instance_id": row["instance_id"], "model_name_or_path": f"swarmq/{experiment}/{row['condition']}",
                "model_patch": extract_diff(row["completion"] or "") or ""}  # fmt: skip


def task_text(issue: Issue) -> str:
    return f"Repository: {issue.repo}\n\nIssue:\n{issue.problem.strip()}\n"


def score_swebench(issue_data: dict[str, Any], completion: str) -> Score:
    """valid: a well-formed diff was found; invalid: one was found but is malformed; empty: none found."""
    start = time.perf_counter()
    diff = extract_diff(completion)
    if diff is None:
        detail: dict[str, Any] = {
            "files": [],
            "added": 0,
            "removed": 0,
            "hunks": 0,
            "reason": "no diff found",
        }
        return Score(False, "empty", detail, time.perf_counter() - start)
    check = validate_diff(diff)
    detail = {
        "files": check.files,
        "added": check.added,
        "removed": check.removed,
        "hunks": check.hunks,
        "reason": check.reason,
    }
    gold = issue_data.get("patch")
    if isinstance(gold, str) and gold.strip():
        detail["gold_files"] = validate_diff(gold).files
        detail["same_files"] = sorted(set(check.files)) == sorted(set(detail["gold_files"]))
    status = "valid" if check.valid else "invalid"
    return Score(check.valid, status, detail, time.perf_counter() - start)
