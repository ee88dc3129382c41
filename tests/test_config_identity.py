"""The experiment identity (`config_hash`) stays what stored experiments were hashed with.

The golden hashes were computed at commit 1577936, before `model.prefix_cache` existed: a resumed experiment
from those days must still match its file. If one of these fails, enqueueing an existing experiment's file
again is refused as "a different configuration"; fix the identity, never the literal.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from swarmq.experiment.config import DatasetConfig, ExperimentConfig
from swarmq.experiment.file import load_config
from swarmq.experiment.identity import HASHED_AT_DEFAULT, OPERATIONAL, differences, identity

ROOT = Path(__file__).resolve().parent.parent

SHIPPED = {
    "config/exp3.yaml": "30c3b5e5fab4ca6821ed174bde82a8911df6768314452a2956740c084e23ce87",
    "swarmq/data/demo.yaml": "26dd21e21f13aab4468df3933ef6516ba6249c2e4e8c50f273661344fb548881",
}

MINIMAL: dict[str, Any] = {
    "name": "min",
    "dataset": {"benchmark": "humaneval"},
    "model": {"path": "m.gguf"},
    "conditions": {"a": {}},
}
# Shapes the shipped files do not have: a condition's own model and generation, fields that joined later
# set away from their defaults, operational guards, `models:` expansion, a hub revision.
SHAPES: dict[str, tuple[dict[str, Any], str]] = {
    "minimal": (MINIMAL, "3f0ed55677efebff6e58342bc4a52ce13d24929bdc3479190c050577397efd60"),
    "overrides": (
        {
            "name": "over",
            "seed": 7,
            "dataset": {
                "benchmark": "swebench",
                "limit": 10,
                "shuffle": "per_replicate",
                "task_types": "repo",
                "categories_file": "cats.json",
            },
            "model": {"path": "models/a.gguf", "n_ctx": 2048, "threads": 4},
            "generation": {"max_tokens": 256, "temperature": 0.0, "stop": ["\n\n"], "timeout_seconds": 30},
            "conditions": {
                "base": {"agents": 1},
                "swarm": {
                    "agents": 3,
                    "router": "affinity",
                    "accumulate": True,
                    "model": {"path": "models/b.gguf", "name": "b"},
                    "generation": {"temperature": 0.7},
                },
            },
            "replicates": 2,
            "success": {"rule": "applies"},
            "max_jobs": 500,
            "jobs_per_message": 4,
        },
        "e9410e8de8f61c997b4bbde8178b85023198ccacfd8d778d3a662866a3e86380",
    ),
    "models": (
        {
            "name": "multi",
            "dataset": {
                "benchmark": "humaneval",
                "source": "hub:openai/openai_humaneval",
                "revision": "abc123",
            },
            "models": [{"path": "x.gguf"}, {"path": "y.gguf", "n_batch": 256}],
            "conditions": {"c": {"router": "ucb", "ucb_c": 2.0}},
        },
        "7cffe4617c19958f936fa38a24061086c84a9c85fb292cc0ade65b9a2e685fd4",
    ),
}


@pytest.mark.parametrize(("path", "expected"), SHIPPED.items())
def test_shipped_experiment_files_keep_their_identity(path: str, expected: str) -> None:
    assert load_config(ROOT / path).config_hash() == expected


@pytest.mark.parametrize(("data", "expected"), SHAPES.values(), ids=list(SHAPES))
def test_configuration_shapes_keep_their_identity(data: dict[str, Any], expected: str) -> None:
    config = ExperimentConfig.model_validate(data)
    assert config.config_hash() == expected
    # What Postgres stores reads back to the same identity.
    assert ExperimentConfig.stored(config.canonical_json()).config_hash() == expected


def test_every_shipped_experiment_file_is_pinned() -> None:
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "config").glob("*.yaml")} | {"swarmq/data/demo.yaml"}
    assert shipped == set(SHIPPED)


class _LaterDataset(DatasetConfig):
    sample_weight: float = 1.0


class _LaterConfig(ExperimentConfig):
    """The configuration as it would be with two fields added: one at the top, one in a section."""

    dataset: _LaterDataset
    judge: str | None = None


def test_a_field_added_with_its_default_leaves_the_identity() -> None:
    before = ExperimentConfig.model_validate(MINIMAL).config_hash()
    assert _LaterConfig.model_validate(MINIMAL).config_hash() == before
    judged = _LaterConfig.model_validate({**MINIMAL, "judge": "gpt"})
    weighted = _LaterConfig.model_validate({**MINIMAL, "dataset": {**MINIMAL["dataset"], "sample_weight": 2}})
    assert judged.config_hash() != before
    assert weighted.config_hash() != before
    assert identity(weighted)["dataset"]["sample_weight"] == 2.0


def test_operational_guards_leave_the_identity() -> None:
    before = ExperimentConfig.model_validate(MINIMAL).config_hash()
    guarded = {
        **MINIMAL,
        "model": {"path": "m.gguf", "prefix_cache": False},
        "max_jobs": 3,
        "max_spread": 9,
        "jobs_per_message": 5,
        "generation": {"timeout_seconds": 4},
        "conditions": {"a": {"model": {"path": "m.gguf", "prefix_cache": False}}},
    }
    without = {**guarded, "conditions": {"a": {"model": {"path": "m.gguf"}}}}
    assert (
        ExperimentConfig.model_validate({**guarded, "conditions": MINIMAL["conditions"]}).config_hash()
        == before
    )
    assert (
        ExperimentConfig.model_validate(guarded).config_hash()
        == ExperimentConfig.model_validate(without).config_hash()
    )


def field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field of the configuration as a dotted path, ``*`` for the keys of a mapping of models."""
    paths = set()
    for name, field in model.model_fields.items():
        path = prefix + name
        paths.add(path)
        annotation = field.annotation
        mapping = typing.get_origin(annotation) is dict
        inner = typing.get_args(annotation)[1:] if mapping else (annotation, *typing.get_args(annotation))
        for candidate in inner:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                paths |= field_paths(candidate, path + (".*." if mapping else "."))
    return paths


def test_identity_tables_name_real_fields() -> None:
    """A misspelt path would silently stop applying."""
    paths = field_paths(ExperimentConfig)
    assert "conditions.*.model.n_batch" in paths and "dataset.category_map" in paths
    assert sorted(HASHED_AT_DEFAULT - paths) == []
    assert sorted(OPERATIONAL - paths) == []


def test_differences_name_the_fields_a_refused_resume_differs_in() -> None:
    base = ExperimentConfig.model_validate(MINIMAL)
    assert differences(base, base) == []
    changed = ExperimentConfig.model_validate(
        {
            **MINIMAL,
            "seed": 99,
            "dataset": {**MINIMAL["dataset"], "limit": 7},
            "conditions": {**MINIMAL["conditions"], "extra": {"agents": 2}},
        }
    )
    assert differences(base, changed) == ["conditions.extra", "dataset.limit", "seed"]
    # Operational guards are no part of the identity, so never named.
    assert differences(base, base.model_copy(update={"max_jobs": 5})) == []
    assert len(differences(base, changed, limit=2)) == 2
