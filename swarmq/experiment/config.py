"""The experiment's configuration as one validated model (`ExperimentConfig`), built from its sections
(`sections`, re-exported here as the configuration's public names) and identified by `identity.config_hash`.

`file.py` reads the YAML; these models decide what is valid. `max_jobs` is the one bound a user may raise.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from swarmq.benchmarks.registry import BENCHMARKS
from swarmq.experiment import identity
from swarmq.experiment.bounds import STORED, Strict, at_len, at_most, is_stored
from swarmq.experiment.sections import (
    DEFAULT_CATEGORY_MAP,
    ConditionConfig,
    DatasetConfig,
    GenerationConfig,
    GenerationOverride,
    ModelConfig,
    SuccessConfig,
)

__all__ = [
    "DEFAULT_CATEGORY_MAP",
    "MAX_JOBS",
    "ConditionConfig",
    "DatasetConfig",
    "ExperimentConfig",
    "GenerationConfig",
    "GenerationOverride",
    "ModelConfig",
    "SuccessConfig",
]

MAX_JOBS = 100_000
"""Default `max_jobs`: jobs (issues × conditions × replicates × samples) one experiment may create."""


def _expand_models(data: Any) -> Any:
    """``models: [A, B]`` runs every condition once per model: condition ``c`` becomes ``c@A`` and ``c@B``
    (labels: each model's ``name``, else its file name), each with its own ``model``. The expanded form is
    what is stored, so a configuration read back is expanded already."""
    if not isinstance(data, dict) or "models" not in data:
        return data
    data = dict(data)
    models = data.pop("models")
    if "model" in data:
        raise ValueError("give model (one) or models (a list), not both")
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        raise ValueError("models must be a non-empty list of model settings (each with a path)")
    labels = [ModelConfig.model_validate(m).label for m in models]
    slugs = ["".join(c if c.isalnum() or c in "_-." else "_" for c in label) for label in labels]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"models need distinct names (give each a name:), got {', '.join(labels)}")
    conditions = data.get("conditions")
    if isinstance(conditions, dict):
        expanded: dict[str, Any] = {}
        for name, cond in conditions.items():
            if isinstance(cond, dict) and "model" in cond:
                raise ValueError(
                    f"condition {name!r} sets model: with models: at the top level, every condition "
                    "runs on each of them"
                )
            for model, slug in zip(models, slugs, strict=True):
                expanded[f"{name}@{slug}"] = {**(cond or {}), "model": model}
        data["conditions"] = expanded
    data["model"] = models[0]
    return data


class ExperimentConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    seed: int = 0
    """Experiment seed: stream seeds and shuffles derive from it."""

    dataset: DatasetConfig
    model: ModelConfig
    generation: GenerationConfig = GenerationConfig()
    conditions: Annotated[
        dict[str, ConditionConfig], at_len(64, "each condition is compared with every other")
    ] = Field(min_length=1)
    replicates: Annotated[
        int, at_most(1000, "each replicate is an independent swarm with its own streams")
    ] = Field(default=1, ge=1)
    success: SuccessConfig = SuccessConfig()
    max_jobs: int = Field(default=MAX_JOBS, ge=1)
    """Refuse to create more jobs than this (issues × conditions × replicates × samples): a guard against an
    extra zero, which a file that means it raises."""
    max_spread: Annotated[int, at_most(100_000, "past the number of issues it bounds nothing")] = Field(
        default=4, ge=1
    )
    """Positions any job may run ahead of the slowest unfinished stream (`queue.jobs.release`): a run stopped
    at any moment has every stream, relaxed ones included, within this many issues of every other, so the
    conditions are compared on nearly the same issues. Raise it when job times vary a lot and workers idle."""
    jobs_per_message: Annotated[
        int, at_most(1000, "a message's jobs are held by one worker until all have run")
    ] = Field(default=1, ge=1)
    """Jobs one broker message carries (`queue.broker.publish`): a worker claims them in one statement, runs
    them in turn and writes their outcomes in one statement. Delivery, ack, claim, outcome INSERT and release
    are paid once per message, which matters for jobs of a few milliseconds (a tiny model, replayed scoring;
    bench figure 2). Keep 1 for jobs of seconds: a message's jobs wait for one worker, in turn, even while
    another is idle (each holds its stream meanwhile), and a crash re-runs all of them."""

    @model_validator(mode="before")
    @classmethod
    def _models(cls, data: Any) -> Any:
        return _expand_models(data)

    @field_validator("generation")
    @classmethod
    def _room_for_the_prompt(cls, v: GenerationConfig, info: ValidationInfo) -> GenerationConfig:
        model = info.data.get("model")
        if model is not None and v.max_tokens >= model.n_ctx and not is_stored(info):
            raise ValueError(
                f"max_tokens ({v.max_tokens}) must be below model.n_ctx ({model.n_ctx}): the prompt "
                "needs room in the context too"
            )
        return v

    @model_validator(mode="after")
    def _room_in_each_condition(self, info: ValidationInfo) -> ExperimentConfig:
        """The same rule for conditions with a model or generation of their own."""
        for name, cond in self.conditions.items():
            gen, model = self.generation_for(name), self.model_for(name)
            if (cond.model or cond.generation) and gen.max_tokens >= model.n_ctx and not is_stored(info):
                raise ValueError(
                    f"condition {name!r}: max_tokens ({gen.max_tokens}) must be below its model's "
                    f"n_ctx ({model.n_ctx}): the prompt needs room in the context too"
                )
        return self

    @model_validator(mode="after")
    def _samples_differ(self, info: ValidationInfo) -> ExperimentConfig:
        """Several samples of a greedy decode are one sample n times: refused, not run."""
        if self.generation.samples > 1 and not is_stored(info):
            for name in self.conditions:
                if self.generation_for(name).temperature == 0:
                    raise ValueError(
                        f"generation.samples ({self.generation.samples}) needs a temperature above 0: "
                        f"condition {name!r} decodes greedily, so its samples would all be the same"
                    )
        return self

    @field_validator("success")
    @classmethod
    def _rule_of_the_benchmark(cls, v: SuccessConfig, info: ValidationInfo) -> SuccessConfig:
        dataset = info.data.get("dataset")
        own = BENCHMARKS[dataset.benchmark].rules if dataset is not None else ()
        if dataset is not None and v.rule not in ("scorer", "non_empty", *own) and not is_stored(info):
            choices = ", ".join(("scorer", "non_empty", *own))
            raise ValueError(f"rule {v.rule!r} is not a rule of {dataset.benchmark} (choose from {choices})")
        return v

    @model_validator(mode="after")
    def _condition_names(self) -> ExperimentConfig:
        for name in self.conditions:
            if not name or not all(c.isalnum() or c in "_-.@" for c in name):
                raise ValueError(
                    f"condition name {name!r} may hold only letters, digits, '_', '-', '.' and '@'"
                )
        return self

    @classmethod
    def stored(cls, data: dict[str, Any]) -> ExperimentConfig:
        """A configuration read back from Postgres: valid when it was enqueued, so refusals are skipped."""
        return cls.model_validate(data, context=STORED)

    def effective_rule(self) -> str:
        """The success rule that decides, with ``scorer`` spelled out as the benchmark's own first rule."""
        own = BENCHMARKS[self.dataset.benchmark].rules
        # A stored `resolved` (refused in files: `SuccessConfig`) learns from the scorer.
        rule = "scorer" if self.success.rule == "resolved" else self.success.rule
        return own[0] if rule == "scorer" and own else rule

    def model_for(self, condition: str) -> ModelConfig:
        """The model a condition's jobs run on: its own, else the experiment's."""
        return self.conditions[condition].model or self.model

    def generation_for(self, condition: str) -> GenerationConfig:
        """The experiment's generation settings with the condition's changes."""
        override = self.conditions[condition].generation
        if override is None:
            return self.generation
        return self.generation.model_copy(update=override.model_dump(exclude_none=True))

    def models(self) -> dict[str, ModelConfig]:
        """Every model the experiment runs, by queue key (`keys.model_key`), the experiment's own first."""
        from swarmq.keys import model_key

        out = {model_key(self.model.path): self.model}
        for name in self.conditions:
            out.setdefault(model_key(self.model_for(name).path), self.model_for(name))
        return out

    def in_flight_limits(self) -> dict[str, int | None]:
        """Each condition's jobs allowed in flight per stream (None: unlimited), as `queue.jobs.release`
        reads it."""
        return {name: cond.in_flight_limit for name, cond in self.conditions.items()}

    def canonical_json(self) -> dict[str, Any]:
        """Every field, defaults included: what Postgres stores (`experiments.config`)."""
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        """The experiment's identity (`experiment.identity`): the name is part of it, operational guards and
        fields at their defaults added since the first stored experiments are not."""
        return identity.config_hash(self)
