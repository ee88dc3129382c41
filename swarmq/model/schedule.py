"""The batching engine's decisions, as pure functions: which prompt to evaluate next and in what chunks,
when a sequence's text is finished (the same rules as llama-cpp-python's ``create_completion``), and how
many slots and prefix-cache holders fit.

`batched.py` does the I/O (llama_decode, sampling) around these; keeping them here lets them be tested
without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_SLOTS = 32
"""Upper bound of ``--slots``: beyond this, batched decoding of one GGUF gains little and each slot costs a
full KV cache of ``n_ctx``."""
MAX_HOLDERS = 16
"""Upper bound of the prefix cache's holders: an experiment's live prefixes are its agents' buffers (and the
bare prompt), rarely more than a dozen per worker; each holder costs a full KV cache of ``n_ctx``."""


def next_prefill(waiting: Sequence[tuple[bool, int]]) -> int | None:
    """Which waiting prompt to evaluate next, given (started, tokens the prefix cache would give) for each,
    oldest first: a started prompt goes on (its slot's cells are half written); else the one the cache covers
    most, the oldest on a tie. One prompt at a time lets a prompt that shares a prefix with the one being read
    take it from the cache once that one is inserted, instead of evaluating it a second time beside it."""
    if not waiting:
        return None
    started = [i for i, (s, _) in enumerate(waiting) if s]
    if started:
        return started[0]
    return max(range(len(waiting)), key=lambda i: (waiting[i][1], -i))


def prefill_chunk(fed: int, prompt_len: int, n_batch: int) -> int:
    """Prompt tokens in the next evaluation of a prompt: up to the next multiple of ``n_batch`` from
    position 0, where `Llama.eval` splits a prompt. After a cached prefix the chunks end where the one-pass
    run's end, so the last one has the same rows: llama.cpp picks its kernels by the rows in a batch, and a
    short last chunk computed inside a longer one gives other logits."""
    return max(0, min(n_batch - fed % n_batch, prompt_len - fed))


def default_holders(free_bytes: int, seq_bytes: int, cap: int, share: float = 0.25) -> int:
    """Prefix-cache holders beside the slots: each is one more sequence of ``n_ctx`` tokens (``seq_bytes`` of
    KV cache); they take at most ``share`` of the memory free after the weights and slots, at most ``cap``."""
    if seq_bytes <= 0:
        return 0
    return max(0, min(cap, int(free_bytes * share) // seq_bytes))


@dataclass
class TextState:
    """One sequence's completion, token by token, with `Llama.create_completion`'s rules (llama-cpp-python
    0.3): an end-of-generation token stops without being counted; a stop string cuts the text before it; an
    incomplete UTF-8 character defers both the stop-string and the max_tokens check; max_tokens ends with
    ``length``. Equal rules are what makes ``--slots K`` match ``--slots 1`` at T=0."""

    stops: tuple[bytes, ...]
    max_tokens: int
    tokens: list[int] = field(default_factory=list)
    raw: bytes = b""
    text: bytes = b""
    finish_reason: str | None = None
    _multibyte_fix: int = 0

    def push(self, token: int, piece: bytes, eog: bool) -> bool:
        """Take the sampled token; returns True when the sequence is finished (``finish_reason`` set)."""
        if eog:
            return self._finish(self.raw, "stop")
        self.tokens.append(token)
        self.raw += piece
        for k, char in enumerate(self.raw[-3:]):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    self._multibyte_fix = num - k
        if self._multibyte_fix > 0:
            self._multibyte_fix -= 1
            return False
        found = [s for s in self.stops if s in self.raw]
        if found:
            return self._finish(self.raw[: self.raw.index(found[0])], "stop")
        if len(self.tokens) >= self.max_tokens:
            return self._finish(self.raw, "length")
        return False

    def cut(self) -> bool:
        """The sequence ran out of context: end it where it is."""
        return self._finish(self.raw, "length")

    def _finish(self, text: bytes, reason: str) -> bool:
        self.text, self.finish_reason = text, reason
        return True

    def decoded(self) -> str:
        return self.text.decode("utf-8", errors="ignore")


def effective_max_tokens(max_tokens: int, prompt_tokens: int, n_ctx: int) -> int:
    """``create_completion``'s bound: unlimited (≤ 0) or past the context means up to the context's end."""
    if max_tokens <= 0:
        max_tokens = n_ctx - prompt_tokens
    return max_tokens if max_tokens + prompt_tokens < n_ctx else n_ctx - prompt_tokens


def kv_bytes_per_token(meta: dict[str, object]) -> int | None:
    """Bytes of f16 K and V cache one token takes, from the GGUF header; None when the header does not say."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        return None

    def num(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        return int(value) if isinstance(value, int) else None

    layers, heads, embd = num("block_count"), num("attention.head_count"), num("embedding_length")
    kv_heads = num("attention.head_count_kv") or heads
    k_len = num("attention.key_length") or (embd // heads if embd and heads else None)
    v_len = num("attention.value_length") or k_len
    if not layers or not kv_heads or not k_len or not v_len:
        return None
    return layers * kv_heads * (k_len + v_len) * 2


def default_slots(
    free_bytes: int, model_bytes: int, n_ctx: int, kv_per_token: int | None, reserve_bytes: int = 1 << 30
) -> int:
    """Slots that fit a GPU: what is left after the weights and a reserve (compute buffers, CUDA context),
    divided by one sequence's KV cache (``n_ctx`` tokens), between 1 and `MAX_SLOTS`."""
    if kv_per_token is None or kv_per_token <= 0 or n_ctx <= 0:
        return 1
    left = free_bytes - model_bytes - reserve_bytes
    return max(1, min(MAX_SLOTS, left // (n_ctx * kv_per_token)))
