"""Continuous batching of several jobs' generations in one llama.cpp context (`swarmq worker --slots K`).

Decoding is memory-bandwidth bound: one sequence leaves most of a GPU (or a CPU's caches) idle, and one
`llama_decode` over K sequences costs little more than over one. llama-cpp-python's `Llama` generates one
sequence at a time, so this engine drives its low-level API directly (as llama.cpp's `examples/parallel`
does): one model, one context with ``n_seq_max = slots`` (each sequence gets the configured ``n_ctx``), and
one engine thread that owns the context. Job threads call `generate()`; their requests join between decode
steps, prompts are evaluated in chunks of ``n_batch`` interleaved with the running sequences' next tokens,
and a finished sequence frees its slot (``llama_memory_seq_rm``) at once.

Each job keeps what the one-at-a-time path (`llama.py`) gives it: the same prompt tokens and chat rendering
(llama-cpp-python's own code renders them), its own sampler chain (`Llama._init_sampler`'s, seeded with the
job seed), the same stop rules (`schedule.TextState`), its deadline, and a prompt longer than the context as
that job's `GenerationError`. What batching may change is the last bits of the logits (llama.cpp's kernels
sum in another order for another batch shape); README "Slots" says how often that changes a text at T=0.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarmq.errors import GenerationError, GenerationTimedOut, ModelError
from swarmq.files import file_sha256
from swarmq.model.base import Generation, GenerationRequest, ModelInfo
from swarmq.model.llama import check_model_file, check_trained_context
from swarmq.model.schedule import TextState, effective_max_tokens, plan_batch
from swarmq.model.stops import eog_token_ids

log = logging.getLogger(__name__)
TOKENIZER_CTX = 256
"""Context of the high-level `Llama` kept for its tokenizer, metadata and chat handler: it never decodes."""
WAIT_SLICE_SECONDS = 0.25
"""A job thread waits for its result in slices, so the job watch's interrupt reaches it within one."""
LLAMA_DEFAULT_UBATCH = 512
"""`Llama`'s n_ubatch, kept so that a slot computes with the same micro-batches as the one-at-a-time path."""


@dataclass(eq=False)
class _Seq:
    """One job's generation inside the engine."""

    prompt: list[int]
    text: TextState
    temperature: float
    top_p: float
    seed: int
    deadline: float | None
    budget: float | None
    slot: int = -1
    fed: int = 0
    """Prompt tokens evaluated so far."""
    pos: int = 0
    next_token: int | None = None
    """The last sampled token, fed at the next step (None while the prompt is being read)."""
    sampler: Any = None
    prompt_seconds: float = 0.0
    generation_seconds: float = 0.0
    steps: int = 0
    batch_sum: int = 0
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None
    error: BaseException | None = None


class _Captured(Exception):
    """Raised by the chat-rendering proxy instead of generating: carries what the chat handler would decode."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


class _RenderOnly:
    """Stands in for `Llama` when its chat handler is called: tokenizing goes to the real one, and the
    `create_completion` the handler ends with hands back the prompt tokens and stop strings instead."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> Any:
        raise _Captured(kwargs)


class BatchedGenerator:
    """One GGUF, one context of ``slots`` sequences, one engine thread; `generate` may be called from many
    threads at once (the worker's Celery threads, one per slot)."""

    def __init__(
        self,
        path: Path,
        *,
        slots: int,
        name: str | None = None,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        threads: int | None = None,
        n_batch: int = 512,
    ) -> None:
        if slots < 1:
            raise ModelError(f"slots must be at least 1, not {slots}")
        check_model_file(path)
        sha = file_sha256(path)
        check_trained_context(path, n_ctx)
        import llama_cpp

        self._lc = llama_cpp
        start = time.perf_counter()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=min(TOKENIZER_CTX, n_ctx),
                n_batch=min(TOKENIZER_CTX, n_ctx),
                n_gpu_layers=n_gpu_layers,
                n_threads=threads,
                verbose=bool(os.environ.get("SWARMQ_LLAMA_VERBOSE")),
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from None
        params = llama_cpp.llama_context_params()
        ctypes.pointer(params)[0] = self._llm.context_params  # the one-at-a-time path's settings, then ours
        params.n_ctx = (
            n_ctx * slots
        )  # not unified: llama.cpp gives each of the n_seq_max sequences n_ctx / n_seq_max
        params.n_batch = min(n_batch, n_ctx)
        params.n_ubatch = min(params.n_batch, LLAMA_DEFAULT_UBATCH)
        params.n_seq_max = slots
        self._ctx = llama_cpp.llama_init_from_model(self._llm._model.model, params)
        if not self._ctx:
            raise ModelError(
                f"llama.cpp could not create a context of {slots} x {n_ctx} tokens for {path.name}"
            )
        load_seconds = time.perf_counter() - start
        self._n_ctx = min(n_ctx, int(llama_cpp.llama_n_ctx_seq(self._ctx)))
        self._n_batch = int(llama_cpp.llama_n_batch(self._ctx))
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = self._llm._model.vocab
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(64)
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
            slots=slots,
        )
        self.slots = slots
        self._cond = threading.Condition()
        self._pending: list[_Seq] = []
        self._active: list[_Seq] = []
        self._free = list(range(slots))
        self._closed = False
        self.steps = 0
        self.python_seconds = 0.0
        """Engine time outside llama_decode and sampling (batch building, bookkeeping): what batching costs in
        Python. The benchmark reports its share."""
        self.decode_seconds = 0.0
        self.sample_seconds = 0.0
        """llama_decode, and sampling plus the stop rules per sequence (llama.cpp's sampler, in C, dominates)."""
        self._thread = threading.Thread(target=self._loop, name="swarmq-batch-engine", daemon=True)
        self._thread.start()

    # ---- job threads -------------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        submitted = time.monotonic()
        tokens, stops = self._render(request)
        if len(tokens) >= self._n_ctx:  # llama-cpp-python's own message, as on the one-at-a-time path
            raise GenerationError(f"Requested tokens ({len(tokens)}) exceed context window of {self._n_ctx}")
        budget = request.deadline_seconds
        seq = _Seq(
            prompt=tokens,
            text=TextState(
                tuple(s.encode() for s in stops),
                effective_max_tokens(request.max_tokens, len(tokens), self._n_ctx),
            ),
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            deadline=None if budget is None else submitted + budget,
            budget=budget,
        )
        with self._cond:
            if self._closed:
                raise GenerationError("the batching engine is closed")
            self._pending.append(seq)
            self._cond.notify()
        try:
            while not seq.done.wait(WAIT_SLICE_SECONDS):
                pass
        except BaseException:  # interrupted (the job watch, a shutdown): the engine drops the sequence
            seq.cancelled = True
            with self._cond:
                self._cond.notify()
            raise
        if seq.error is not None:
            raise seq.error
        assert seq.result is not None
        return seq.result

    def _render(self, request: GenerationRequest) -> tuple[list[int], list[str]]:
        """Prompt tokens and stop strings, exactly as `Llama.create_completion` / `create_chat_completion`
        would build them for this request."""
        llm = self._llm
        if request.messages is None:
            model = llm._model
            bos = [model.token_cls() if model.token_cls() != -1 else llm.token_bos()]
            if not model.add_bos_token() or bos == [-1]:
                bos = []
            sep = model.token_sep()
            eos = [sep if sep != -1 else llm.token_eos()] if model.add_eos_token() or sep != -1 else []
            body = (
                llm.tokenize(request.prompt.encode("utf-8"), add_bos=False, special=True)
                if request.prompt
                else []
            )
            return bos + body + eos, list(request.stop)
        fmt = llm.chat_format or ""
        handler: Any = (
            llm.chat_handler
            or llm._chat_handlers.get(fmt)
            or self._lc.llama_chat_format.get_chat_completion_handler(fmt)
        )
        try:
            handler(
                llama=_RenderOnly(llm),
                messages=[dict(m) for m in request.messages],
                stop=list(request.stop),
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                seed=request.seed,
            )
        except _Captured as got:
            prompt, stop = got.kwargs["prompt"], got.kwargs.get("stop") or []
            return list(prompt), [stop] if isinstance(stop, str) else list(stop)
        raise GenerationError("the chat handler did not render a prompt")  # pragma: no cover

    def close(self) -> None:
        """Stop the engine: every waiting job gets a GenerationError."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)

    # ---- the engine thread -------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closed and not self._pending and not self._active:
                        self._cond.wait()
                    if self._closed:
                        break
                    self._admit()
                self._expire()
                if self._active:
                    self._step()
        except BaseException as exc:  # a bug here must not leave job threads waiting forever
            log.exception("batching engine failed")
            self._fail_all(GenerationError(f"batching engine failed: {type(exc).__name__}: {exc}"))
            raise
        self._fail_all(GenerationError("the batching engine is closed"))

    def _admit(self) -> None:
        """Pending requests take free slots, oldest first (called with the lock held)."""
        while self._free and self._pending:
            seq = self._pending.pop(0)
            if seq.cancelled:
                continue
            seq.slot = self._free.pop(0)
            self._lc.llama_memory_seq_rm(self._mem, seq.slot, -1, -1)
            seq.sampler = self._sampler(seq)
            self._active.append(seq)

    def _sampler(self, seq: _Seq) -> Any:
        """`Llama._init_sampler`'s chain (penalties at 1.0 are a no-op and left out), seeded with the job seed."""
        lc = self._lc
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if seq.temperature < 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seq.seed))
        elif seq.temperature == 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            for s in (
                lc.llama_sampler_init_top_k(40),
                lc.llama_sampler_init_typical(1.0, 1),
                lc.llama_sampler_init_top_p(seq.top_p, 1),
                lc.llama_sampler_init_min_p(0.05, 1),
                lc.llama_sampler_init_temp(seq.temperature),
                lc.llama_sampler_init_dist(seq.seed),
            ):
                lc.llama_sampler_chain_add(chain, s)
        return chain

    def _expire(self) -> None:
        now = time.monotonic()
        for seq in list(self._active):
            if seq.cancelled:
                self._end(seq, error=GenerationError("cancelled"))
            elif seq.deadline is not None and now > seq.deadline:
                self._end(seq, error=GenerationTimedOut(f"generation timed out after {seq.budget:g} s"))
        with self._cond:
            for seq in [s for s in self._pending if s.deadline is not None and now > s.deadline]:
                self._pending.remove(seq)
                seq.error = GenerationTimedOut(f"generation timed out after {seq.budget:g} s")
                seq.done.set()

    def _step(self) -> None:
        """One llama_decode over every running sequence's next token and as much prompt as fits."""
        t0 = time.perf_counter()
        lc, batch = self._lc, self._batch
        by_slot = {s.slot: s for s in self._active}
        decoding = [s.slot for s in self._active if s.next_token is not None]
        prefilling = [(s.slot, len(s.prompt) - s.fed) for s in self._active if s.next_token is None]
        plan = plan_batch(decoding, prefilling, self._n_batch)
        n = 0
        outputs: list[tuple[_Seq, int]] = []
        reading: set[int] = set()
        for slot, count in plan:
            seq = by_slot[slot]
            if seq.next_token is not None:
                self._put(n, seq.next_token, seq.pos, slot, True)
                outputs.append((seq, n))
                seq.pos += 1
                n += 1
                continue
            reading.add(slot)
            end = seq.fed + count
            for i in range(seq.fed, end):
                last = i == len(seq.prompt) - 1
                self._put(n, seq.prompt[i], i, slot, last)
                if last:
                    outputs.append((seq, n))
                n += 1
            seq.fed = seq.pos = end
        batch.n_tokens = n
        t1 = time.perf_counter()
        rc = lc.llama_decode(self._ctx, batch)
        t2 = time.perf_counter()
        if rc != 0:
            for slot, _ in plan:
                self._end(by_slot[slot], error=GenerationError(f"llama_decode failed (code {rc})"))
            return
        for seq, index in outputs:
            token = int(lc.llama_sampler_sample(seq.sampler, self._ctx, index))
            eog = bool(lc.llama_vocab_is_eog(self._vocab, token))
            piece = b"" if eog else self._piece_of(token)
            if seq.text.push(token, piece, eog) or (seq.pos >= self._n_ctx and seq.text.cut()):
                seq.next_token = -1  # finished below, after the step's time is attributed
            else:
                seq.next_token = token
        t3 = time.perf_counter()
        step = t3 - t1
        width = len(plan)
        for slot, _ in plan:
            seq = by_slot[slot]
            if slot in reading:
                seq.prompt_seconds += step
            else:
                seq.generation_seconds += step
            seq.steps += 1
            seq.batch_sum += width
            if seq.text.finish_reason is not None:
                self._end(seq)
        self.steps += 1
        self.decode_seconds += t2 - t1
        self.sample_seconds += t3 - t2
        self.python_seconds += (t1 - t0) + (time.perf_counter() - t3)

    def _put(self, i: int, token: int, pos: int, slot: int, logits: bool) -> None:
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = slot
        b.logits[i] = logits

    def _piece_of(self, token: int) -> bytes:
        # `Llama.detokenize` is this, token by token (special tokens rendered as nothing).
        n = self._lc.llama_token_to_piece(self._vocab, token, self._piece, 64, 0, False)
        return self._piece.raw[: max(0, n)]

    def _detok(self, token: int) -> str:
        try:
            return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")
        except Exception:  # an id outside the vocab: nothing to add
            return ""

    def _end(self, seq: _Seq, error: BaseException | None = None) -> None:
        """Free the slot at once and hand the result (or error) to the waiting job thread."""
        if seq in self._active:
            self._active.remove(seq)
            self._lc.llama_memory_seq_rm(self._mem, seq.slot, -1, -1)
            self._lc.llama_sampler_free(seq.sampler)
            with self._cond:
                self._free.append(seq.slot)
                self._free.sort()
        if error is not None:
            seq.error = error
        else:
            seq.result = Generation(
                text=seq.text.decoded(),
                finish_reason=seq.text.finish_reason or "stop",
                prompt_tokens=len(seq.prompt),
                completion_tokens=len(seq.text.tokens),
                prompt_seconds=seq.prompt_seconds,
                generation_seconds=seq.generation_seconds,
                mean_batch_size=seq.batch_sum / seq.steps if seq.steps else 1.0,
            )
        seq.done.set()

    def _fail_all(self, error: GenerationError) -> None:
        for seq in list(self._active):
            self._end(seq, error=error)
        with self._cond:
            pending, self._pending = self._pending, []
        for seq in pending:
            seq.error = error
            seq.done.set()
