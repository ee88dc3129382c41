"""The null model: a stand-in Generator that answers every prompt at once with the same text.

`swarmq worker --cpu --burst --generator bench.null:null_generator --model models/null.gguf` runs the whole
job path (claim, route, Redis state, prompt, outcome write, update, release, ack) with no model cost, so what
is left is swarmq's own per-job overhead. The model file need not exist when a generator is given.
"""

from __future__ import annotations

from pathlib import Path

from swarmq.experiment.config import ModelConfig
from swarmq.model.base import Generation, GenerationRequest, ModelInfo

NULL_TEXT = "    return None\n"
"""Non-empty, so ``success: non_empty`` counts it and accumulating swarms grow their buffers."""


class NullGenerator:
    def __init__(self, path: Path) -> None:
        self.info = ModelInfo("null", "0" * 64, 0.0, "null", 2048)

    def generate(self, request: GenerationRequest) -> Generation:
        return Generation(NULL_TEXT, "stop", len(request.prompt) // 4, 4, 0.0, 0.0)


def null_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> NullGenerator:
    return NullGenerator(path)
