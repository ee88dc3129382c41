"""The model-file checks every loader runs, and llama-cpp-python's high-level `Llama` behind the `Generator`
interface.

Workers and replay generate through the batching engine (`batched.py`); `LlamaGenerator` is the one-pass
reference it is held to: the tests and bench figure "prefix" compare the engine's T=0 texts with a fresh
`Llama` run of the same prompt. Which strings stop generation and which token ids end it are the pure
functions of `stops.py`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from swarmq.errors import GenerationError, GenerationTimedOut, ModelError
from swarmq.files import file_sha256
from swarmq.model import hub
from swarmq.model.base import Generation, GenerationRequest, ModelInfo
from swarmq.model.gguf import MAGIC, trained_context
from swarmq.model.stops import eog_token_ids
from swarmq.settings import Settings

GGML_LOG_LEVEL_ERROR, GGML_LOG_LEVEL_CONT = 4, 5
"""ggml's log levels (ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 continues the last line)."""
_log: dict[str, Any] = {"verbose": None, "callback": None, "last": 0}
"""The installed llama.cpp log callback (referenced while C holds it) and its verbosity (None: not set)."""


def set_llama_log(verbose: bool) -> None:
    """llama.cpp's own log lines (``llama_kv_cache_iswa: ...``, ``load_tensors: ...``) on stderr: all of
    them with ``verbose``, else only its errors. Installed as llama.cpp's log callback (`llama_log_set`);
    the loaders install the quiet one unless this was called first (``swarmq -v``) or
    SWARMQ_LLAMA_VERBOSE is set. llama-cpp-python's own callback maps ggml's levels one off (its warnings
    print as errors), so it is replaced, not configured."""
    import llama_cpp

    _log["verbose"] = verbose
    if _log["callback"] is None:

        def callback(level: int, text: bytes | None, _user: Any) -> None:
            level = _log["last"] if level == GGML_LOG_LEVEL_CONT else level
            _log["last"] = level
            if text and (_log["verbose"] or level >= GGML_LOG_LEVEL_ERROR):
                sys.stderr.write(text.decode("utf-8", errors="replace"))
                sys.stderr.flush()

        _log["callback"] = llama_cpp.llama_log_callback(callback)
    llama_cpp.llama_log_set(_log["callback"], None)


def llama_log_verbose() -> bool:
    """The verbosity of llama.cpp's log, installing the callback first if no one has (quiet, unless
    SWARMQ_LLAMA_VERBOSE is set)."""
    if _log["verbose"] is None:
        set_llama_log(bool(os.environ.get("SWARMQ_LLAMA_VERBOSE")))
    return bool(_log["verbose"])


def check_model_file(path: Path) -> None:
    """Fail early, before any job is touched: missing file, not a GGUF, or larger than free memory."""
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    with path.open("rb") as fh:
        if fh.read(4) != MAGIC:
            raise ModelError(f"not a GGUF file (bad magic bytes): {path}")


def check_fits(path: Path, free_bytes: int, where: str) -> None:
    size = path.stat().st_size
    if size > free_bytes:
        raise ModelError(
            f"model {path.name} ({size / 2**30:.1f} GiB) is larger than free {where} "
            f"({free_bytes / 2**30:.1f} GiB)"
        )


def check_trained_context(path: Path, n_ctx: int) -> None:
    """Refused before llama.cpp allocates a KV cache larger than the model was trained for."""
    trained = trained_context(path)
    if trained and n_ctx > trained:
        raise ModelError(
            f"model.n_ctx {n_ctx} is above the {trained} tokens {path.name} was trained on; "
            "lower n_ctx in the experiment file"
        )


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
    ) -> None:
        check_model_file(path)
        sha = file_sha256(path)
        import llama_cpp

        check_trained_context(path, n_ctx)
        start = time.perf_counter()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=n_gpu_layers,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=min(n_batch, n_ctx),
                verbose=llama_log_verbose(),
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
            sha256=sha,
            load_seconds=load_seconds,
            llama_cpp_version=llama_cpp.__version__,
            n_ctx=n_ctx,
            chat_template="tokenizer.chat_template" in meta,
            eog_token_ids=eog,
            eog_texts=texts,
        )

    def _detok(self, token: int) -> str:
        try:
            return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")
        except Exception:  # an id outside the vocab: nothing to add
            return ""

    def generate(self, request: GenerationRequest) -> Generation:
        llm = self._llm
        ctx = llm._ctx.ctx
        perf = getattr(self._llama_cpp, "llama_perf_context_reset", None)
        if perf is not None:
            perf(ctx)
        start = time.perf_counter()
        budget = request.deadline_seconds
        timed_out = False
        eos = llm.token_eos()

        def past_deadline(_tokens: Any, _logits: Any) -> bool:
            # Checked after every token: a stop here is clean; an interruption could leave llama.cpp mid-step.
            nonlocal timed_out
            timed_out = timed_out or (budget is not None and time.perf_counter() - start > budget)
            return timed_out

        def end_past_deadline(tokens: Any, logits: Any) -> Any:
            # Called from a ctypes callback, where an exception would be ignored: past the deadline it leaves
            # the end-of-sequence token as the only choice, and the flag raises once generation returns.
            if past_deadline(tokens, logits):
                logits[:] = -float("inf")
                logits[eos] = 0.0
            return logits

        sampling: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stop": list(request.stop),
        }
        try:
            if request.messages is not None:
                # The chat path takes no stopping criteria: a logits processor also runs once per token.
                out: Any = llm.create_chat_completion(
                    messages=[dict(m) for m in request.messages],  # type: ignore[misc]
                    logits_processor=self._llama_cpp.LogitsProcessorList([end_past_deadline]),
                    **sampling,
                )
                text = out["choices"][0]["message"]["content"] or ""
            else:
                stopping = self._llama_cpp.StoppingCriteriaList([past_deadline])
                out = llm.create_completion(request.prompt, stopping_criteria=stopping, **sampling)
                text = out["choices"][0]["text"]
        except ValueError as exc:  # e.g. "Requested tokens (9000) exceed context window of 8192"
            raise GenerationError(str(exc).splitlines()[0]) from None
        wall = time.perf_counter() - start
        if timed_out:
            raise GenerationTimedOut(f"generation timed out after {budget:g} s")
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


def resolve_model_path(path: str, settings: Settings) -> Path:
    """``hf:ORG/REPO/FILE.gguf``: the file in the local hub cache (`hub.resolve`); a path: as given
    (relative to the current directory), else by file name in `hub.local_dirs` (`hub.local_path`)."""
    if path.startswith(hub.PREFIX):
        return hub.resolve(path)
    return hub.local_path(path, settings)


def missing_models(paths: list[str], settings: Settings) -> list[str]:
    """Local model paths that resolve to no file here (hub references are resolved where workers run)."""
    return [
        p for p in paths if not p.startswith(hub.PREFIX) and not resolve_model_path(p, settings).is_file()
    ]
