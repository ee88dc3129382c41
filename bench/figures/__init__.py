"""One module per figure; each has ``KEY``, ``TITLE`` and ``run(ctx) -> FigureResult``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.env import Endpoints


@dataclass
class Context:
    """Options of one `python -m bench` run, shared by every figure."""

    endpoints: Endpoints
    workdir: Path
    repeats: int = 3
    n: int = 8
    """Figure 1: HumanEval prompts per repeat."""
    max_tokens: int = 64
    model: Path = Path("models/gemma-3-270m-q4_k_m.gguf")
    gpu: int | None = None
    gpus: list[int] = field(default_factory=list)
    threads: int | None = None
    slots: tuple[int, ...] = ()
    """Figure "slots": the K to sweep (default 1, 2, 4, 8)."""
    null_jobs: int = 328
    enqueue_replicates: int = 15
    swarm_ops: int = 2000
    outcomes: int = 1_000_000
    say: Callable[[str], None] = print
