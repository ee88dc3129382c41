"""Stand-in generators behind the real `Generator` interface, for worker subprocesses in tests
(`swarmq worker --generator tests.fakes:NAME`). Never used on a user's path."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from swarmq.config import ModelConfig
from swarmq.model import Generation, GenerationRequest, ModelInfo


class HashGenerator:
    """Deterministic: the completion depends only on the prompt and seed. About half the prompts get an
    empty completion, so under `success: non_empty` outcomes depend on the routed agent's examples."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.info = ModelInfo("hash-stand-in", "stand-in", "0" * 64, 0.0, "stand-in", 2048)

    def generate(self, request: GenerationRequest) -> Generation:
        if self.delay:
            time.sleep(self.delay)
        digest = hashlib.sha256(f"{request.seed}/{request.prompt}".encode()).hexdigest()
        text = "" if int(digest[:2], 16) % 2 else f"    return '{digest[:8]}'\n"
        return Generation(text, "stop", len(request.prompt) // 4, len(text) // 4, 0.001, 0.002)


def hash_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    return HashGenerator(float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")))


class CrashGenerator(HashGenerator):
    """Kills its own process (like a segfault in llama.cpp) on prompts containing the marker."""

    def generate(self, request: GenerationRequest) -> Generation:
        if os.environ.get("SWARMQ_TEST_POISON", "\0") in request.prompt:
            os.kill(os.getpid(), 9)
        return super().generate(request)


def crash_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> CrashGenerator:
    return CrashGenerator(float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")))
