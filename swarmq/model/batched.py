"""The generation engine: every job's generation in one llama.cpp context (`swarmq worker --slots K`, K ≥ 1).

Decoding is memory-bandwidth bound: one `llama_decode` over K sequences costs little more than over one. The
engine drives llama-cpp-python's low-level API (as llama.cpp's `examples/parallel` does): one context with a
KV stream per slot and per prefix-cache holder (`prefix_cache.py`), and one engine thread that owns it. Each
step is one `llama_decode` over every running sequence's next token, then one over a chunk of one prompt
(`schedule.next_prefill`). The two are never mixed in a call: llama.cpp splits a multi-stream batch into
equal per-sequence micro-batches, which would evaluate a prompt's first token apart from the rest (another
split, other logits) and multiply the graph runs of a step. A prompt starts from the holder sharing most of
its leading tokens (`llama_memory_seq_cp`, bit-exact) and, once evaluated, is kept in a holder in its turn.
Each job keeps llama-cpp-python's prompt tokens (`render.py`), its own seeded sampler chain, its stop rules
(`schedule.TextState`), deadline and cancellation, and a too-long prompt as its own `GenerationError`.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from pathlib import Path

from swarmq.errors import GenerationCancelled, GenerationError, GenerationTimedOut
from swarmq.model.base import Generation, GenerationRequest
from swarmq.model.context import open_context
from swarmq.model.prefix_cache import DEFAULT_ALIGN, STATS, PrefixCache
from swarmq.model.render import put_token, render, sampler_chain, token_piece
from swarmq.model.schedule import next_prefill, prefill_chunk
from swarmq.model.sequence import Seq

log = logging.getLogger(__name__)
WAIT_SLICE_SECONDS = 0.25
"""A job thread waits for its result in slices: the job watch's interrupt and the cancel signal reach it."""


class BatchedGenerator:
    """One GGUF, one context of ``slots`` sequences and ``holders`` cached prompts, one engine thread;
    `generate` may be called from many threads at once (the worker's Celery threads, one per slot)."""

    def __init__(
        self,
        path: Path,
        *,
        slots: int,
        holders: int = 0,
        name: str | None = None,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        threads: int | None = None,
        n_batch: int = 512,
        align: int = DEFAULT_ALIGN,
    ) -> None:
        x = open_context(
            path,
            slots=slots,
            holders=holders,
            name=name,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            threads=threads,
            n_batch=n_batch,
        )
        self._lc, self._llm, self._ctx, self._mem, self._vocab = x.lc, x.llm, x.ctx, x.mem, x.vocab
        self._n_ctx, self._n_batch, self.info, holders = x.n_ctx, x.n_batch, x.info, x.info.prefix_holders
        self._batch = self._lc.llama_batch_init(max(self._n_batch, slots), 0, 1)
        self._piece = ctypes.create_string_buffer(64)
        self.slots, self.holders = slots, holders
        self.cache = PrefixCache(range(slots, slots + holders), align) if holders else None
        self._cache_version = 0
        self._cond = threading.Condition()
        self._pending: list[Seq] = []
        self._active: list[Seq] = []
        self._free = list(range(slots))
        self._closed = False
        self.steps = 0
        self.python_seconds = 0.0
        """Engine time outside llama_decode and sampling (batch building, bookkeeping): what the engine costs
        in Python. The benchmark reports its share."""
        self.decode_seconds = 0.0
        self.sample_seconds = 0.0
        """llama_decode, and sampling plus the stop rules per sequence (llama.cpp's C sampler dominates)."""
        self._thread = threading.Thread(target=self._loop, name="swarmq-batch-engine", daemon=True)
        self._thread.start()

    # ---- job threads -------------------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> Generation:
        seq = self._submit(request, prime_tokens=None)
        assert seq.result is not None
        return seq.result

    def preload(self, request: GenerationRequest, tokens: int) -> int:
        """Evaluate the first ``tokens`` prompt tokens of ``request`` into the prefix cache, as if an earlier
        job had left them there (`swarmq replay` reproduces a recorded split so). Returns the tokens kept."""
        if self.cache is None or tokens <= 0:
            return 0
        return len(self._submit(request, prime_tokens=tokens).prompt)

    def _submit(self, request: GenerationRequest, prime_tokens: int | None) -> Seq:
        tokens, stops = render(self._llm, request)
        if len(tokens) >= self._n_ctx:  # llama-cpp-python's own message, as on `Llama`
            raise GenerationError(f"Requested tokens ({len(tokens)}) exceed context window of {self._n_ctx}")
        seq = Seq.of(request, tokens, stops, self._n_ctx, prime_tokens)
        cancel = request.cancel
        with self._cond:
            if self._closed:
                raise GenerationError("the batching engine is closed")
            self._pending.append(seq)
            self._cond.notify()
        try:
            while not seq.done.wait(WAIT_SLICE_SECONDS):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled(cancel.reason)
        except BaseException:  # interrupted (the job watch, a shutdown, the cancel): the engine drops it
            seq.cancelled = True
            with self._cond:
                self._cond.notify()
            raise
        if seq.error is not None:
            raise seq.error
        return seq

    def cache_stats(self) -> dict[str, int]:
        """Holders, lookups, hits, and prompt tokens taken from the cache so far (zeros with it off)."""
        return self.cache.stats() if self.cache is not None else dict.fromkeys(STATS, 0)

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
        """Pending requests take free slots, oldest first (called with the lock held); the lowest free slot,
        so that running sequences keep consecutive ids (llama.cpp puts only those in one micro-batch)."""
        while self._free and self._pending:
            seq = self._pending.pop(0)
            if seq.cancelled:
                continue
            seq.slot = self._free.pop(0)
            self._lc.llama_memory_seq_rm(self._mem, seq.slot, -1, -1)
            seq.sampler = sampler_chain(seq.temperature, seq.top_p, seq.seed)
            self._active.append(seq)

    def _expire(self) -> None:
        now = time.monotonic()
        for seq in list(self._active):
            if seq.cancel is not None and seq.cancel.is_set():
                self._end(seq, error=GenerationCancelled(seq.cancel.reason))
            elif seq.cancelled:
                self._end(seq, error=GenerationError("cancelled"))
            elif seq.deadline is not None and now > seq.deadline:
                self._end(seq, error=GenerationTimedOut(f"generation timed out after {seq.budget:g} s"))
        with self._cond:
            for seq in [s for s in self._pending if s.deadline is not None and now > s.deadline]:
                self._pending.remove(seq)
                seq.error = GenerationTimedOut(f"generation timed out after {seq.budget:g} s")
                seq.done.set()

    def _step(self) -> None:
        """One llama_decode over every running sequence's next token, then one over a prompt chunk."""
        decoding = sorted((s for s in self._active if s.next_token is not None), key=lambda s: s.slot)
        if decoding:
            self._decode(decoding)
        waiting = [s for s in self._active if s.next_token is None]
        pick = next_prefill([(s.started, self._peek(s)) for s in waiting])
        if pick is not None:
            self._prefill(waiting[pick])
        self.steps += 1

    def _peek(self, seq: Seq) -> int:
        if self.cache is None or seq.started:
            return 0
        if seq.peek[0] != self._cache_version:
            found = self.cache.peek(seq.prompt)
            seq.peek = (self._cache_version, found.tokens if found else 0)
        return seq.peek[1]

    def _decode(self, seqs: list[Seq]) -> None:
        t0 = time.perf_counter()
        for i, seq in enumerate(seqs):
            put_token(self._batch, i, seq.next_token or 0, seq.fed, seq.slot, True)
            seq.fed += 1
        self._batch.n_tokens = len(seqs)
        self._run(seqs, [(seq, i) for i, seq in enumerate(seqs)], t0, prompt=False)

    def _prefill(self, seq: Seq) -> None:
        t0 = time.perf_counter()
        lc = self._lc
        if not seq.started:
            seq.started = True
            found = self.cache.match(seq.prompt) if self.cache is not None and not seq.prime else None
            if found is not None:  # the holder's cells, then only the shared part of them
                lc.llama_memory_seq_cp(self._mem, found.seq_id, seq.slot, -1, -1)
                lc.llama_memory_seq_rm(self._mem, seq.slot, found.tokens, -1)
                seq.fed = seq.cached = found.tokens
        count = prefill_chunk(seq.fed, len(seq.prompt), self._n_batch)
        end = seq.fed + count
        for n, i in enumerate(range(seq.fed, end)):
            put_token(self._batch, n, seq.prompt[i], i, seq.slot, i == len(seq.prompt) - 1)
        self._batch.n_tokens = count
        seq.fed = end
        self._run([seq], [(seq, count - 1)] if end == len(seq.prompt) else [], t0, prompt=True)

    def _run(self, seqs: list[Seq], outputs: list[tuple[Seq, int]], t0: float, *, prompt: bool) -> None:
        """llama_decode the batch built for ``seqs``; sample where ``outputs`` asks; time it to them."""
        lc = self._lc
        t1 = time.perf_counter()
        rc = lc.llama_decode(self._ctx, self._batch)
        t2 = time.perf_counter()
        if rc != 0:
            for seq in seqs:
                self._end(seq, error=GenerationError(f"llama_decode failed (code {rc})"))
            return
        finished = []
        for seq, index in outputs:
            if prompt:
                self._cache_prompt(seq)
            if seq.prime:
                finished.append(seq)
                continue
            token = int(lc.llama_sampler_sample(seq.sampler, self._ctx, index))
            eog = bool(lc.llama_vocab_is_eog(self._vocab, token))
            piece = b"" if eog else token_piece(self._vocab, token, self._piece)
            seq.next_token = token
            if seq.text.push(token, piece, eog) or (seq.fed >= self._n_ctx and seq.text.cut()):
                finished.append(seq)
        t3 = time.perf_counter()
        for seq in seqs:
            if prompt:
                seq.prompt_seconds += t3 - t1
            else:
                seq.generation_seconds += t3 - t1
            seq.steps += 1
            seq.batch_sum += len(seqs)
        for seq in finished:
            self._end(seq)
        self.decode_seconds += t2 - t1
        self.sample_seconds += t3 - t2
        self.python_seconds += (t1 - t0) + (time.perf_counter() - t3)

    def _cache_prompt(self, seq: Seq) -> None:
        """Keep the whole evaluated prompt: its slot holds exactly its cells until the next decode, before
        which llama.cpp applies the queued stream copy."""
        if self.cache is None:
            return
        to = self.cache.insert(seq.prompt)
        if to is not None:
            self._lc.llama_memory_seq_cp(self._mem, seq.slot, to.seq_id, -1, -1)
            self._cache_version += 1

    def _end(self, seq: Seq, error: BaseException | None = None) -> None:
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
            seq.result = seq.generation()
        seq.done.set()

    def _fail_all(self, error: GenerationError) -> None:
        for seq in list(self._active):
            self._end(seq, error=error)
        with self._cond:
            pending, self._pending = self._pending, []
        for seq in pending:
            seq.error = error
            seq.done.set()
