"""An experiment's identity (`config_hash`): enqueueing a name again resumes the experiment when its file has
the same identity, and is refused otherwise.

Two kinds of field stay out of it. Operational guards (`OPERATIONAL`) say how an experiment runs, not what it
computes, so a resume may change them. And a field at its default counts only when it is one of
`HASHED_AT_DEFAULT`, the fields the first stored experiments were hashed with; any other field counts once a
file sets it away from its default. A new field with a default therefore leaves every stored identity as it
was, and needs no entry anywhere. What stays a trap is changing a field's default: a file that omits the
field then means something else. `tests/test_config_identity.py` pins the hashes of the shipped files.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

OPERATIONAL = frozenset(
    {
        "max_jobs",
        "max_spread",
        "jobs_per_message",
        "generation.timeout_seconds",
        "model.prefix_cache",
        "conditions.*.model.prefix_cache",
    }
)
"""Guards on how an experiment runs, not what it computes (``*``: every key of a mapping)."""

HASHED_AT_DEFAULT = frozenset(
    {
        "name",
        "seed",
        "dataset",
        "dataset.benchmark",
        "dataset.source",
        "dataset.split",
        "dataset.limit",
        "dataset.instance_ids",
        "dataset.repos",
        "dataset.categories",
        "dataset.shuffle",
        "dataset.category_map",
        "model",
        "model.path",
        "model.name",
        "model.n_ctx",
        "model.n_gpu_layers",
        "model.threads",
        "model.n_batch",
        "generation",
        "generation.max_tokens",
        "generation.temperature",
        "generation.top_p",
        "generation.seed",
        "generation.stop",
        "conditions",
        "conditions.*.agents",
        "conditions.*.router",
        "conditions.*.router_temperature",
        "conditions.*.ucb_c",
        "conditions.*.accumulate",
        "conditions.*.max_examples",
        "conditions.*.max_show",
        "conditions.*.type_filtered",
        "conditions.*.ordering",
        "conditions.*.max_in_flight",
        "conditions.*.system_prompt",
        "conditions.*.model.path",
        "conditions.*.model.name",
        "conditions.*.model.n_ctx",
        "conditions.*.model.n_gpu_layers",
        "conditions.*.model.threads",
        "conditions.*.model.n_batch",
        "conditions.*.generation.max_tokens",
        "conditions.*.generation.temperature",
        "conditions.*.generation.top_p",
        "conditions.*.generation.seed",
        "conditions.*.generation.stop",
        "conditions.*.generation.timeout_seconds",
        "replicates",
        "success",
        "success.rule",
    }
)
"""Fields hashed even at their defaults, as the first stored experiments were. Closed: adding to it changes
the identity of every experiment that leaves the field at its default."""


def identity(config: BaseModel) -> dict[str, Any]:
    """The content that makes the experiment what it is, as JSON values."""
    return _fields(config, "")


def config_hash(config: BaseModel) -> str:
    """sha256 of the identity in canonical JSON (sorted keys, no spaces)."""
    blob = json.dumps(identity(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _fields(model: BaseModel, prefix: str) -> dict[str, Any]:
    out = {}
    for name, field in type(model).model_fields.items():
        path = prefix + name
        value = getattr(model, name)
        if path in OPERATIONAL:
            continue
        if path not in HASHED_AT_DEFAULT and value == field.get_default(call_default_factory=True):
            continue
        out[name] = _value(value, path)
    return out


def _value(value: Any, path: str) -> Any:
    if isinstance(value, BaseModel):
        return _fields(value, path + ".")
    if isinstance(value, dict):
        return {key: _value(item, path + ".*") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_value(item, path + ".*") for item in value]
    return to_jsonable_python(value)


def differences(old: BaseModel, new: BaseModel, limit: int = 5) -> list[str]:
    """The fields (dotted paths, e.g. ``conditions.swarm.agents``) whose identity differs between two
    configurations, at most ``limit`` of them: what a refused resume names, so that no one has to diff
    files."""
    found: list[str] = []
    _diff(identity(old), identity(new), "", found)
    return found[:limit]


def _diff(a: Any, b: Any, path: str, found: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key), found)
    elif a != b:
        found.append(path or "(the whole configuration)")
