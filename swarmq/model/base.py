"""What a model is to swarmq: a `Generator` that turns a request into a generation and describes itself.

llama.cpp (`llama.py`) is the one on every user path; `scripted.py` is a deterministic stand-in for tests,
benchmarks and docs, behind the same interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    """Plain-completion prompt; for chat models, the JSON of ``messages`` (what is recorded)."""
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: tuple[str, ...] = ()
    messages: tuple[Mapping[str, str], ...] | None = None
    """When set, the GGUF's chat template renders these instead of ``prompt``."""
    deadline_seconds: float | None = None
    """How long the generation may take. A generator that can stop itself does so and raises
    `GenerationTimedOut`; the worker's job watch interrupts one that does not."""
    cancel: CancelSignal | None = field(default=None, compare=False, repr=False)
    """Set by the job's runner when the job must stop; a generator looks at it where it waits and between
    tokens, and raises `GenerationCancelled` with ``cancel.reason``. Not part of what is recorded."""


class CancelSignal(Protocol):
    """What a generator sees of the runner's cancellation (`worker` implements it over a threading.Event)."""

    reason: str

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str
    """``stop`` (end-of-generation token or stop string) or ``length`` (hit max_tokens)."""
    prompt_tokens: int
    completion_tokens: int
    prompt_seconds: float
    generation_seconds: float
    mean_batch_size: float = 1.0
    """How many sequences, on average, shared each llama.cpp decode step with this one (itself included)."""
    prompt_cached_tokens: int = 0
    """Prompt tokens whose KV cells came from the prefix cache; the rest were evaluated."""

    @property
    def prompt_eval_tokens(self) -> int:
        return self.prompt_tokens - self.prompt_cached_tokens

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.generation_seconds if self.generation_seconds > 0 else 0.0


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str
    load_seconds: float
    llama_cpp_version: str
    n_ctx: int
    chat_template: bool = False
    eog_token_ids: tuple[int, ...] = ()
    eog_texts: tuple[str, ...] = ()
    slots: int = 1
    """Sequences decoded together in one llama.cpp context (`swarmq worker --slots`)."""
    prefix_holders: int = 0
    """Evaluated prompts the prefix cache keeps beside the slots (0: the cache is off)."""


class Generator(Protocol):
    info: ModelInfo

    def generate(self, request: GenerationRequest) -> Generation: ...


GeneratorFactory = Callable[[Path, Any, "int | None"], Generator]
"""Builds a Generator from (model path, the experiment's model config, GPU index): how a worker is given a
stand-in (`--generator module:callable`) and how replay is given one in tests."""
