"""Opening the engine's llama.cpp context: the model once, and one context of ``slots + holders`` sequences of
``n_ctx`` tokens each, with the one-sequence path's settings (`Llama`'s context parameters) otherwise."""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarmq.errors import ModelError
from swarmq.files import file_sha256
from swarmq.model.base import ModelInfo
from swarmq.model.llama import check_model_file, check_trained_context, llama_log_verbose
from swarmq.model.stops import eog_token_ids

log = logging.getLogger(__name__)
TOKENIZER_CTX = 256
"""Context of the high-level `Llama` kept for its tokenizer, metadata and chat handler: it never decodes."""
LLAMA_DEFAULT_UBATCH = 512
"""`Llama`'s n_ubatch, kept so that a prompt is computed in the same micro-batches as on `Llama`."""


@dataclass
class EngineContext:
    lc: Any
    """The llama_cpp module."""
    llm: Any
    """The high-level `Llama`: tokenizer, metadata, chat handler."""
    ctx: Any
    mem: Any
    vocab: Any
    n_ctx: int
    """Tokens per sequence."""
    n_batch: int
    info: ModelInfo


def open_context(
    path: Path,
    *,
    slots: int,
    holders: int,
    name: str | None,
    n_ctx: int,
    n_gpu_layers: int,
    threads: int | None,
    n_batch: int,
) -> EngineContext:
    """Load ``path`` and create the context. Holders are dropped (with a warning) where the model's
    sliding-window cache is pruned: a copied prefix would miss cells it needs."""
    if slots < 1 or holders < 0:
        raise ModelError(f"slots must be at least 1 and holders at least 0, not {slots} and {holders}")
    check_model_file(path)
    sha = file_sha256(path)
    check_trained_context(path, n_ctx)
    import llama_cpp as lc

    start = time.perf_counter()
    try:
        llm = lc.Llama(
            model_path=str(path),
            n_ctx=min(TOKENIZER_CTX, n_ctx),
            n_batch=min(TOKENIZER_CTX, n_ctx),
            n_gpu_layers=n_gpu_layers,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=llama_log_verbose(),
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"llama.cpp could not load {path}: {exc}") from None
    params = lc.llama_context_params()
    ctypes.pointer(params)[0] = llm.context_params  # the one-sequence path's settings, then ours
    if holders and lc.llama_model_n_swa(llm._model.model) > 0 and not params.swa_full:
        log.warning("prefix cache off: %s prunes its sliding-window KV cells (swa_full off)", path.name)
        holders = 0
    n_seq = slots + holders
    params.n_ctx = n_ctx * n_seq  # not unified: each of the n_seq_max streams gets n_ctx / n_seq_max
    params.n_batch = min(n_batch, n_ctx)
    params.n_ubatch = min(params.n_batch, LLAMA_DEFAULT_UBATCH)
    params.n_seq_max = n_seq
    ctx = lc.llama_init_from_model(llm._model.model, params)
    if not ctx:
        raise ModelError(f"llama.cpp could not create a context of {n_seq} x {n_ctx} tokens for {path.name}")
    meta = dict(llm.metadata)
    eog = eog_token_ids(meta, llm.token_eos())
    info = ModelInfo(
        name=name or path.name,
        sha256=sha,
        load_seconds=time.perf_counter() - start,
        llama_cpp_version=lc.__version__,
        n_ctx=n_ctx,
        chat_template="tokenizer.chat_template" in meta,
        eog_token_ids=eog,
        eog_texts=tuple(t for t in (_detok(llm, i) for i in eog) if t),
        slots=slots,
        prefix_holders=holders,
    )
    return EngineContext(
        lc=lc,
        llm=llm,
        ctx=ctx,
        mem=lc.llama_get_memory(ctx),
        vocab=llm._model.vocab,
        n_ctx=min(n_ctx, int(lc.llama_n_ctx_seq(ctx))),
        n_batch=int(lc.llama_n_batch(ctx)),
        info=info,
    )


def _detok(llm: Any, token: int) -> str:
    try:
        return str(llm.detokenize([token], special=True).decode("utf-8", errors="replace"))
    except Exception:  # an id outside the vocab: nothing to add
        return ""
