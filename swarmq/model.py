"""The model: one GGUF loaded once per worker and kept resident, behind a small `Generator` interface.

Decisions (which strings stop generation, which token ids end it) are pure functions; loading and calling
llama-cpp-python is the only I/O here. Tests use stand-in generators behind the same interface.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from swarmq.errors import GenerationError, ModelError

GGUF_MAGIC = b"GGUF"
EOG_METADATA_KEYS = ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")


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


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str
    """``stop`` (end-of-generation token or stop string) or ``length`` (hit max_tokens)."""
    prompt_tokens: int
    completion_tokens: int
    prompt_seconds: float
    generation_seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.generation_seconds if self.generation_seconds > 0 else 0.0


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    sha256: str
    load_seconds: float
    llama_cpp_version: str
    n_ctx: int
    chat_template: bool = False
    eog_token_ids: tuple[int, ...] = ()
    eog_texts: tuple[str, ...] = ()
    gpu_index: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Generator(Protocol):
    info: ModelInfo

    def generate(self, request: GenerationRequest) -> Generation: ...


def eog_token_ids(metadata: Mapping[str, str], eos_fallback: int | None = None) -> tuple[int, ...]:
    """End-of-generation token ids declared by the GGUF (EOS, EOT, EOM), in a stable order."""
    ids: list[int] = []
    for key in EOG_METADATA_KEYS:
        value = metadata.get(key)
        if value is not None and str(value).lstrip("-").isdigit() and int(value) >= 0 and int(value) not in ids:
            ids.append(int(value))
    if not ids and eos_fallback is not None and eos_fallback >= 0:
        ids.append(eos_fallback)
    return tuple(ids)


def stop_strings(eog_texts: Sequence[str], *extra: Sequence[str]) -> tuple[str, ...]:
    """The model's own end-of-generation texts first, then every extra list; extras add, never replace.

    Empty strings are dropped: llama.cpp treats "" as matching at once, which yields empty generations.
    """
    out: list[str] = []
    for group in (eog_texts, *extra):
        for s in group:
            if s and s not in out:
                out.append(s)
    return tuple(out)


def check_model_file(path: Path) -> None:
    """Fail early, before any job is touched: missing file, not a GGUF, or larger than free memory."""
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ModelError(f"not a GGUF file (bad magic bytes): {path}")


def check_fits(path: Path, free_bytes: int, where: str) -> None:
    size = path.stat().st_size
    if size > free_bytes:
        raise ModelError(
            f"model {path.name} ({size / 2**30:.1f} GiB) is larger than free {where} ({free_bytes / 2**30:.1f} GiB)"
        )


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class LlamaGenerator:
    """llama-cpp-python, loaded once. Import happens here so CUDA_VISIBLE_DEVICES set before is honoured."""

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        threads: int | None = None,
        n_batch: int = 512,
        gpu_index: int | None = None,
    ) -> None:
        check_model_file(path)
        sha = file_sha256(path)
        import llama_cpp

        start = time.perf_counter()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                n_threads=threads,
                n_batch=min(n_batch, n_ctx),
                verbose=bool(os.environ.get("SWARMQ_LLAMA_VERBOSE")),
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from None
        load_seconds = time.perf_counter() - start
        self._llama_cpp = llama_cpp
        meta = dict(self._llm.metadata)
        eog = eog_token_ids(meta, self._llm.token_eos())
        texts = tuple(t for t in (self._detok(i) for i in eog) if t)
        self.info = ModelInfo(
            name=name or path.name,
            path=str(path),
            sha256=sha,
            load_seconds=load_seconds,
            llama_cpp_version=llama_cpp.__version__,
            n_ctx=n_ctx,
            chat_template="tokenizer.chat_template" in meta,
            eog_token_ids=eog,
            eog_texts=texts,
            gpu_index=gpu_index,
        )

    def _detok(self, token: int) -> str:
        try:
            return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")
        except Exception:  # an id outside the vocab: nothing to add
            return ""

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=True, special=True))

    def generate(self, request: GenerationRequest) -> Generation:
        llm = self._llm
        ctx = llm._ctx.ctx
        perf = getattr(self._llama_cpp, "llama_perf_context_reset", None)
        if perf is not None:
            perf(ctx)
        start = time.perf_counter()
        try:
            if request.messages is not None:
                out: Any = llm.create_chat_completion(
                    messages=[dict(m) for m in request.messages],  # type: ignore[misc]
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    top_p=request.top_p,
                    seed=request.seed,
                    stop=list(request.stop),
                )
                text = out["choices"][0]["message"]["content"] or ""
            else:
                out = llm.create_completion(
                    request.prompt,
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    top_p=request.top_p,
                    seed=request.seed,
                    stop=list(request.stop),
                )
                text = out["choices"][0]["text"]
        except ValueError as exc:  # e.g. "Requested tokens (9000) exceed context window of 8192"
            raise GenerationError(str(exc).splitlines()[0]) from None
        wall = time.perf_counter() - start
        usage = out.get("usage", {})
        prompt_s, gen_s = self._timings(wall)
        return Generation(
            text=text,
            finish_reason=out["choices"][0].get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            prompt_seconds=prompt_s,
            generation_seconds=gen_s,
        )

    def _timings(self, wall: float) -> tuple[float, float]:
        """llama.cpp's own prompt-eval and eval times; the wall time when they are unavailable."""
        fn = getattr(self._llama_cpp, "llama_perf_context", None)
        if fn is None:
            return 0.0, wall
        data = fn(self._llm._ctx.ctx)
        return data.t_p_eval_ms / 1000.0, data.t_eval_ms / 1000.0
