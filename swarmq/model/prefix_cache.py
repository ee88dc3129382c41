"""Which evaluated prompt to start a new one from (pure): holders of token ids, longest common prefix, LRU.

A holder is a llama.cpp sequence (beside the engine's slots) whose KV cells hold one earlier prompt, all of
it. A new prompt starts from the holder it shares the most leading tokens with: the engine copies that
holder's cells into the prompt's slot (`llama_memory_seq_cp`, bit-exact) and evaluates only the rest. The
shared length is rounded down to ``align`` tokens, because llama.cpp's kernels group rows of a batch and an
evaluation split elsewhere changes the last bits of the logits; at least `MIN_EVAL` prompt tokens are always
left to evaluate, since sampling needs the last one's logits and a batch of very few rows is computed by
other kernels than the one-pass run's. Nothing is keyed by agent or buffer version: a changed buffer
simply matches less.

Eviction (SGLang's radix cache drops least-recently-used leaves; llama.cpp's server keeps one prompt per
slot): a holder whose tokens are a prefix of another holder's adds nothing and goes first, then the least
recently used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STATS = ("holders", "lookups", "hits", "cached_tokens", "prompt_tokens")
DEFAULT_ALIGN = 16
"""Split points that leave the logits unchanged on the CPU build (multiples of 4 and of 16 both did)."""
MIN_EVAL = 16
"""Prompt tokens always evaluated, never taken from the cache. With only a few left (4 of 132), the CPU
build's last batch took other kernels than a one-pass evaluation and parted T=0 texts; 16 kept every text of
the demo workload identical (bench/README.md, run 12)."""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def usable(shared: int, prompt_len: int, align: int) -> int:
    """Tokens a prompt may take from a holder it shares ``shared`` with: rounded down to ``align``, and at
    least `MIN_EVAL` prompt tokens left to evaluate."""
    n = min(shared, prompt_len - MIN_EVAL)
    return max(0, n - n % align) if align > 1 else max(0, n)


@dataclass
class Holder:
    seq_id: int
    tokens: tuple[int, ...] = ()
    last_used: int = 0

    @property
    def empty(self) -> bool:
        return not self.tokens


@dataclass(frozen=True)
class Match:
    seq_id: int
    tokens: int
    """Prompt tokens to copy from the holder (a multiple of the alignment)."""


@dataclass(frozen=True)
class Insert:
    seq_id: int
    """The holder to copy the prompt's slot into."""


class PrefixCache:
    """Holders over llama.cpp sequence ids; `match` before a prompt is evaluated, `insert` after."""

    def __init__(self, seq_ids: Sequence[int], align: int = DEFAULT_ALIGN) -> None:
        if align < 1:
            raise ValueError(f"align must be at least 1, not {align}")
        self.align = align
        self.holders = [Holder(s) for s in seq_ids]
        self._clock = 0
        self.lookups = 0
        self.hits = 0
        self.cached_tokens = 0
        self.prompt_tokens = 0

    def __len__(self) -> int:
        return len(self.holders)

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def peek(self, tokens: Sequence[int]) -> Match | None:
        """The best holder for ``tokens`` without using it (scheduling asks this of every waiting prompt)."""
        best: Match | None = None
        for h in self.holders:
            if h.empty:
                continue
            n = usable(common_prefix(h.tokens, tokens), len(tokens), self.align)
            if n > 0 and (best is None or n > best.tokens):
                best = Match(h.seq_id, n)
        return best

    def match(self, tokens: Sequence[int]) -> Match | None:
        """The holder to start ``tokens`` from (counted in the hit rate, and made most recently used)."""
        found = self.peek(tokens)
        self.lookups += 1
        self.prompt_tokens += len(tokens)
        if found is not None:
            self.hits += 1
            self.cached_tokens += found.tokens
            self._holder(found.seq_id).last_used = self._tick()
        return found

    def insert(self, tokens: Sequence[int]) -> Insert | None:
        """Where to keep the whole evaluated prompt ``tokens``; None when a holder already covers it (it holds
        these tokens or more) or there are no holders. The chosen holder is taken to hold ``tokens`` at once:
        the engine copies before its next decode."""
        if not self.holders or not tokens:
            return None
        key = tuple(tokens)
        for h in self.holders:
            if len(h.tokens) >= len(key) and h.tokens[: len(key)] == key:
                h.last_used = self._tick()
                return None
        target = self._victim(key)
        target.tokens, target.last_used = key, self._tick()
        return Insert(target.seq_id)

    def _victim(self, key: tuple[int, ...]) -> Holder:
        """A holder the new prompt extends (it is then dominated), else an empty one, else a holder
        dominated by another, else the least recently used."""
        extended = [h for h in self.holders if not h.empty and key[: len(h.tokens)] == h.tokens]
        if extended:
            return max(extended, key=lambda h: len(h.tokens))
        empty = [h for h in self.holders if h.empty]
        if empty:
            return empty[0]
        dominated = [h for h in self.holders if self._dominated(h)]
        pool = dominated or self.holders
        return min(pool, key=lambda h: h.last_used)

    def _dominated(self, h: Holder) -> bool:
        return any(
            o is not h and len(o.tokens) > len(h.tokens) and o.tokens[: len(h.tokens)] == h.tokens
            for o in self.holders
        )

    def _holder(self, seq_id: int) -> Holder:
        return next(h for h in self.holders if h.seq_id == seq_id)

    def stats(self) -> dict[str, int]:
        """Holders, lookups, hits, prompt tokens taken from holders, and prompt tokens looked up."""
        return dict(
            zip(
                STATS,
                (len(self), self.lookups, self.hits, self.cached_tokens, self.prompt_tokens),
                strict=True,
            )
        )

    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0
