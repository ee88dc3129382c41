"""A deterministic stand-in model behind the real `Generator` interface, for tests, benchmarks and docs.

Never on a user's path: workers use it only when told to (`--generator swarmq.model.scripted:factory`, a
hidden option), so the queue, the swarm and the store can be exercised in-process and in milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from swarmq.model.base import Generation, GenerationRequest, ModelInfo


class ScriptedGenerator:
    """The completion depends only on the prompt and the seed. About half the prompts get an empty
    completion, so under `success: non_empty` outcomes depend on the routed agent's examples."""

    def __init__(self, delay: float = 0.0, name: str = "scripted") -> None:
        self.delay = delay
        self.info = ModelInfo(name, "0" * 64, 0.0, "stand-in", 2048)

    def generate(self, request: GenerationRequest) -> Generation:
        if self.delay:
            time.sleep(self.delay)
        digest = hashlib.sha256(f"{request.seed}/{request.prompt}".encode()).hexdigest()
        text = "" if int(digest[:2], 16) % 2 else f"    return '{digest[:8]}'\n"
        return Generation(text, "stop", len(request.prompt) // 4, len(text) // 4, 0.001, 0.002)


def factory(path: Path, cfg: Any, gpu: int | None) -> ScriptedGenerator:
    """The worker's generator factory signature; ``SWARMQ_TEST_GEN_DELAY`` sets seconds per generation."""
    label = getattr(cfg, "label", None) or "scripted"  # the model it stands in for, as outcomes record it
    return ScriptedGenerator(float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")), name=label)
