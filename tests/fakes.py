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


KILL_POINTS = ("generate", "after_outcome", "before_update", "after_update")


def killer_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    """Kill -9 this worker process at a chosen point of a job, with a probability per job.

    SWARMQ_TEST_KILL_AT picks the point: during generation, right after the outcome write, between the
    outcome write and the Redis update, or right after the Redis update. Patching happens here, inside the
    worker process, so swarmq's code carries no test hooks.
    """
    import random

    from swarmq import job as job_module
    from swarmq import store
    from swarmq.swarm import SwarmStore

    point = os.environ.get("SWARMQ_TEST_KILL_AT", "generate")
    prob = float(os.environ.get("SWARMQ_TEST_KILL_PROB", "0.5"))
    rng = random.Random(os.getpid())

    def maybe_die(at: str) -> None:
        if at == point and rng.random() < prob:
            os.kill(os.getpid(), 9)

    finish, apply = store.finish, SwarmStore.apply

    def finish_then(*a, **kw):  # type: ignore[no-untyped-def]
        ok = finish(*a, **kw)
        maybe_die("after_outcome")
        return ok

    def apply_around(self, *a, **kw):  # type: ignore[no-untyped-def]
        maybe_die("before_update")
        result = apply(self, *a, **kw)
        maybe_die("after_update")
        return result

    job_module.store.finish = finish_then  # type: ignore[attr-defined]
    SwarmStore.apply = apply_around  # type: ignore[method-assign]

    class Killer(HashGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            maybe_die("generate")
            return super().generate(request)

    return Killer(float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0.05")))


def failing_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    """Prompts with SWARMQ_TEST_TOO_LONG raise the error llama-cpp-python gives for a prompt over n_ctx;
    prompts with SWARMQ_TEST_BUG raise an unexpected error (a library bug, say)."""
    from swarmq.errors import GenerationError

    class Failing(HashGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            if os.environ.get("SWARMQ_TEST_TOO_LONG", "\0") in request.prompt:
                raise GenerationError("Requested tokens (9000) exceed context window of 2048")
            if os.environ.get("SWARMQ_TEST_BUG", "\0") in request.prompt:
                raise RuntimeError("llama_decode returned -3\nsecond line")
            return super().generate(request)

    return Failing()
