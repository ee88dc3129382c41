"""SWE-bench: the curated 50-issue set of the original study (bundled) or any SWE-bench-shaped rows.

The model is asked for a unified diff. Rules: ``applies`` (the default) checks that the patch applies to the
repository at the issue's base commit (`repos.py`); ``valid_diff`` only that a well-formed diff was produced
(`diff.py`). The official harness's verdict comes back later through `harness.py` (`swarmq import-eval`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from swarmq.benchmarks.base import Issue, Prompt, Score, TaskTypes
from swarmq.benchmarks.diff import extract_diff, validate_diff
from swarmq.benchmarks.humaneval import chat_prompt
from swarmq.benchmarks.repos import Repos
from swarmq.settings import get_settings
from swarmq.swarm.state import Example

DEFAULT_CATEGORY = "other"
"""Category of a row without one (hub SWE-bench sets carry no category column)."""

_TEXT_FIELDS = ("base_commit", "patch", "test_patch", "hints_text")
ASK = "Write a patch in unified diff format (git diff) that resolves the issue."
CLOSING_FENCE = "\n```"
"""A plain prompt ends by opening a ```diff fence; the model's closing fence ends its answer (a diff line
never starts with a backtick), before it goes on to invent the next few-shot task."""


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def study_rows(document: Any) -> list[dict[str, Any]] | None:
    """The ``issues`` list of the study's ``{"metadata": ..., "issues": [...]}`` layout, or None."""
    if isinstance(document, dict) and isinstance(document.get("issues"), list):
        return list(document["issues"])
    return None


@cache
def curated_categories() -> dict[str, str]:
    """Instance id → category of the study's curated issues (shipped): hub copies of SWE-bench Lite carry no
    category column, and these 50 keep theirs wherever they are read from."""
    text = files("swarmq").joinpath("data", "swebench_curated.json").read_text()
    rows = study_rows(json.loads(text)) or []
    return {str(r["instance_id"]): str(r["category"]) for r in rows if r.get("category")}


def repo_task_type(repo: str) -> str:
    """``task_types: repo``: the repository's name, lower-cased (``django/django`` → ``django``)."""
    name = repo.rstrip("/").rsplit("/", 1)[-1].strip().lower()
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name)[:32] or "unknown"


class SWEBench:
    """Issue = one GitHub issue; the scorer checks the proposed patch, the harness decides ``resolved``."""

    name: str = "swebench"
    id_field: str = "instance_id"
    export_per_stream: bool = True
    rules: tuple[str, ...] = ("applies", "valid_diff")
    required_fields: tuple[str, ...] = ("instance_id", "repo", "problem_statement")

    def __init__(self, repos: Repos | None = None) -> None:
        self._repos = repos

    @property
    def repos(self) -> Repos:
        """The local clones (``SWARMQ_REPOS_DIR``), read from the settings on first use, not at import."""
        if self._repos is None:
            self._repos = Repos(get_settings().repos_dir)
        return self._repos

    def bundled_rows(self) -> list[dict[str, Any]]:
        text = files("swarmq").joinpath("data", "swebench_curated.json").read_text()
        rows = study_rows(json.loads(text))
        assert rows is not None, "bundled swebench_curated.json lost its 'issues' list"
        return rows

    def bundled_revision(self) -> str:
        data = files("swarmq").joinpath("data", "swebench_curated.json").read_bytes()
        return f"sha256:{hashlib.sha256(data).hexdigest()}"

    def to_issue(self, row: dict[str, Any], types: TaskTypes) -> Issue:
        """Task type by the declared source (`TaskTypes`): ``repo``: the repository's name (``django`` for
        django/django); ``category``: the row's category, else the user's categories file, else the category
        the study gave the issue (shipped for its 50 issues, found by instance id in any SWE-bench Lite copy),
        else ``other`` (enqueue warns when a history-reading router meets a single task type)."""
        iid = row["instance_id"]
        category = _text(row, "category") or types.categories.get(iid) or curated_categories().get(iid)
        category = category or DEFAULT_CATEGORY
        if types.by == "repo":
            task_type = repo_task_type(str(row["repo"]))
        elif category in types.category_map:
            task_type = types.category_map[category]
        else:
            known = ", ".join(sorted(types.category_map))
            raise ValueError(f"category {category!r} is not in dataset.category_map ({known})")
        data = {key: _text(row, key) for key in _TEXT_FIELDS}
        data.update(repo=row["repo"], category=category)
        return Issue(
            instance_id=iid,
            problem=row["problem_statement"],
            task_type=task_type,
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
        return (
            () if chat else (CLOSING_FENCE,)
        )  # a chat reply opens its own fences: the stop would end it at once

    def example(self, example_id: str, issue: Issue, completion: str, *, chat: bool) -> Example:
        """The task framed as prompts show it, and the extracted diff as the solution (never the raw reply:
        under ``non_empty`` a success may hold no diff, and then the example shows none)."""
        diff = extract_diff(completion, opened=not chat)
        return Example(example_id, task_text(issue), diff or "", issue.task_type)

    def self_test(self) -> str | None:
        """`applies` needs git; a worker without it would record every SWE-bench outcome as a scoring
        error."""
        return self.repos.self_test()

    def score(self, issue: Issue, completion: str, *, chat: bool, rule: str) -> Score:
        chosen = self.rules[0] if rule == "scorer" else rule
        if chosen == "valid_diff":
            return score_swebench(issue.data, completion, opened=not chat)
        if chosen == "applies":
            return score_applies(issue.data, completion, self.repos, opened=not chat)
        raise ValueError(
            f"success.rule {rule!r} is not a rule of swebench (choose from scorer, {', '.join(self.rules)})"
        )

    def export_line(self, row: dict[str, Any], experiment: str) -> dict[str, Any]:
        """The harness's predictions format: one patch per instance."""
        return {
            "instance_id": row["instance_id"],
            "model_name_or_path": f"swarmq/{experiment}/{row['condition']}",
            "model_patch": extract_diff(row["completion"] or "", opened=row.get("chat") is False) or "",
        }


def task_text(issue: Issue) -> str:
    return f"Repository: {issue.repo}\n\nIssue:\n{issue.problem.strip()}\n"


def score_swebench(issue_data: dict[str, Any], completion: str, *, opened: bool = False) -> Score:
    """valid: a well-formed diff was found; invalid: one was found but is malformed; empty: none found.
    ``opened``: the prompt opened the diff's fence (plain completion), see `extract_diff`."""
    start = time.perf_counter()
    return _judge_shape(issue_data, extract_diff(completion, opened=opened), start)


def _judge_shape(issue_data: dict[str, Any], diff: str | None, start: float) -> Score:
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


def score_applies(
    issue_data: dict[str, Any], completion: str, repos: Repos, *, opened: bool = False
) -> Score:
    """applies / does_not_apply at the issue's base commit, for a diff that is valid (else as
    `score_swebench`); ``error`` when that cannot be judged (no base commit, repository missing and not
    clonable, git failing)."""
    start = time.perf_counter()
    diff = extract_diff(completion, opened=opened)
    shape = _judge_shape(issue_data, diff, start)
    detail = {**shape.detail, "applies": False}
    if diff is None or shape.status != "valid":
        return Score(False, shape.status, detail, time.perf_counter() - start)
    repo, commit = str(issue_data.get("repo") or ""), str(issue_data.get("base_commit") or "")
    if not repo or not commit:
        missing = "repo" if not repo else "base_commit"
        detail["reason"] = f"the issue has no {missing}, so where the patch applies cannot be checked"
        return Score(False, "error", detail, time.perf_counter() - start)
    check = repos.check(repo, commit, diff)
    detail.update(applies=bool(check.applies), reason=check.reason)
    status = "error" if check.applies is None else "applies" if check.applies else "does_not_apply"
    return Score(check.applies is True, status, detail, time.perf_counter() - start)
