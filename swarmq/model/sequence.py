"""One job's generation inside the engine (`batched.py`): its prompt, where it stands, what it took."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from swarmq.model.base import CancelSignal, Generation, GenerationRequest
from swarmq.model.schedule import TextState, effective_max_tokens


@dataclass(eq=False)
class Seq:
    """One job's generation inside the engine."""

    prompt: list[int]
    text: TextState
    temperature: float
    top_p: float
    seed: int
    deadline: float | None
    budget: float | None
    cancel: CancelSignal | None = None
    prime: bool = False
    """Only evaluate the prompt into the prefix cache (`preload`), generate nothing."""
    slot: int = -1
    started: bool = False
    fed: int = 0
    """Prompt tokens in the slot's cells (from the cache or evaluated)."""
    cached: int = 0
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
    peek: tuple[int, int] = (-1, 0)
    """(cache version, tokens the cache would give) when last asked."""

    @classmethod
    def of(
        cls, request: GenerationRequest, tokens: list[int], stops: list[str], n_ctx: int, prime: int | None
    ) -> Seq:
        """The sequence for ``request`` rendered as ``tokens``; with ``prime``, only its first ``prime``
        tokens, to be evaluated into the prefix cache."""
        budget = request.deadline_seconds
        return cls(
            prompt=tokens if prime is None else tokens[:prime],
            text=TextState(
                tuple(s.encode() for s in stops), effective_max_tokens(request.max_tokens, len(tokens), n_ctx)
            ),
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            deadline=None if budget is None else time.monotonic() + budget,
            budget=budget,
            cancel=request.cancel,
            prime=prime is not None,
        )

    def generation(self) -> Generation:
        """What the job gets back."""
        return Generation(
            text=self.text.decoded(),
            finish_reason=self.text.finish_reason or "stop",
            prompt_tokens=len(self.prompt),
            completion_tokens=len(self.text.tokens),
            prompt_seconds=self.prompt_seconds,
            generation_seconds=self.generation_seconds,
            mean_batch_size=self.batch_sum / self.steps if self.steps else 1.0,
            prompt_cached_tokens=self.cached,
        )
