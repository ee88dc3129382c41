"""The batching engine's decisions, as pure functions: what goes into the next llama.cpp batch, when a
sequence's text is finished (the same rules as llama-cpp-python's ``create_completion``), and how many slots
fit a GPU.

`batched.py` does the I/O (llama_decode, sampling) around these; keeping them here lets them be tested
without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_SLOTS = 32
"""Upper bound of ``--slots``: beyond this, batched decoding of one GGUF gains little and each slot costs a
full KV cache of ``n_ctx``."""


def plan_batch(
    decoding: Sequence[int], prefilling: Sequence[tuple[int, int]], n_batch: int
) -> list[tuple[int, int]]:
    """(slot, tokens) to put into the next batch: one token for every decoding sequence first (they never wait
    for a prompt), then prompt chunks, oldest request first, up to ``n_batch`` tokens in all.

    ``prefilling`` holds (slot, prompt tokens not yet evaluated). A long prompt is split across steps, so the
    running sequences keep producing a token per step while it is read."""
    plan = [(slot, 1) for slot in decoding[:n_batch]]
    budget = n_batch - len(plan)
    for slot, remaining in prefilling:
        if budget <= 0:
            break
        take = min(budget, remaining)
        if take > 0:
            plan.append((slot, take))
            budget -= take
    return plan


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
    """``create_completion``'s bound: unlimited (≤ 0) or past the context means up to the end of the context."""
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
