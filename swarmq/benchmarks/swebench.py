"""SWE-bench: the curated 50-issue set of the original study (bundled) or any SWE-bench-shaped rows."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from swarmq.benchmarks.base import Issue

DEFAULT_CATEGORY = "other"
"""Category of a row without one (hub SWE-bench sets carry no category column)."""

_TEXT_FIELDS = ("base_commit", "patch", "test_patch", "hints_text")


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
