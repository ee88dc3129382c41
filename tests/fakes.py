"""Fault-injecting generators for worker subprocesses in tests (`swarmq worker --generator tests.fakes:NAME`),
built on the package's deterministic stand-in (`swarmq.model.scripted`). Never used on a user's path."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from swarmq.experiment.config import ModelConfig
from swarmq.model.base import Generation, GenerationRequest
from swarmq.model.scripted import ScriptedGenerator
from swarmq.model.scripted import factory as hash_generator

HashGenerator = ScriptedGenerator
__all__ = [
    "HashGenerator",
    "crash_generator",
    "failing_generator",
    "gated_failing_generator",
    "gated_generator",
    "hanging_generator",
    "hash_generator",
    "killer_generator",
    "steady_generator",
    "system_exit_generator",
]


class CrashGenerator(HashGenerator):
    """Kills its own process (like a segfault in llama.cpp) on prompts containing the marker."""

    def generate(self, request: GenerationRequest) -> Generation:
        if os.environ.get("SWARMQ_TEST_POISON", "\0") in request.prompt:
            os.kill(os.getpid(), 9)
        return super().generate(request)


def crash_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> CrashGenerator:
    return CrashGenerator(float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")))


class GatedGenerator(HashGenerator):
    """Generates ``SWARMQ_TEST_GATE_AFTER`` jobs freely, then holds every later generation until the file
    ``SWARMQ_TEST_GATE`` exists: a test can act while jobs are certainly in flight, and say when they end,
    without racing a delay against a loaded machine."""

    def __init__(self, delay: float, after: int, gate: Path) -> None:
        super().__init__(delay)
        self.after, self.gate, self.calls = after, gate, 0

    def generate(self, request: GenerationRequest) -> Generation:
        self.calls += 1
        while self.calls > self.after and not self.gate.exists():
            time.sleep(0.02)
        return super().generate(request)


def gated_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> GatedGenerator:
    return GatedGenerator(
        float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")),
        int(os.environ["SWARMQ_TEST_GATE_AFTER"]),
        Path(os.environ["SWARMQ_TEST_GATE"]),
    )


def gated_failing_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> GatedGenerator:
    """`gated_generator` that also fails SWARMQ_TEST_TOO_LONG prompts as `failing_generator` does."""
    from swarmq.errors import GenerationError

    class GatedFailing(GatedGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            if os.environ.get("SWARMQ_TEST_TOO_LONG", "\0") in request.prompt:
                raise GenerationError("Requested tokens (9000) exceed context window of 2048")
            return super().generate(request)

    return GatedFailing(
        float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")),
        int(os.environ["SWARMQ_TEST_GATE_AFTER"]),
        Path(os.environ["SWARMQ_TEST_GATE"]),
    )


KILL_POINTS = ("generate", "after_outcome", "before_update", "after_update")


def killer_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    """Kill -9 this worker process at a chosen point of a job, with a probability per job.

    SWARMQ_TEST_KILL_AT picks the point: during generation, right after the outcome write, between the
    outcome write and the Redis update, or right after the Redis update. Patching happens here, inside the
    worker process, so swarmq's code carries no test hooks.
    """
    import random

    from swarmq.queue import jobs
    from swarmq.swarm.redis import SwarmStore

    point = os.environ.get("SWARMQ_TEST_KILL_AT", "generate")
    prob = float(os.environ.get("SWARMQ_TEST_KILL_PROB", "0.5"))
    rng = random.Random(os.getpid())

    def maybe_die(at: str) -> None:
        if at == point and rng.random() < prob:
            os.kill(os.getpid(), 9)

    finish, apply = jobs.finish_many, SwarmStore.apply

    def finish_then(*a, **kw):  # type: ignore[no-untyped-def]
        ok = finish(*a, **kw)
        maybe_die("after_outcome")
        return ok

    def apply_around(self, *a, **kw):  # type: ignore[no-untyped-def]
        maybe_die("before_update")
        result = apply(self, *a, **kw)
        maybe_die("after_update")
        return result

    jobs.finish_many = finish_then
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


def hanging_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    """Prompts with SWARMQ_TEST_HANG never return (a generation that hangs in Python code: short sleeps in a
    loop, so an exception injected into its thread lands at the next bytecode); with SWARMQ_TEST_STUCK set as
    well, the hang is one call that never returns to the interpreter and blocks the worker's interrupt
    signal, like native code. Every call is logged to SWARMQ_TEST_CALLS (one line per call). Neither
    the hang nor SWARMQ_TEST_GEN_DELAY looks at the request's cancel: only the worker's backstop ends them."""
    import signal
    import time

    class Hanging(HashGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            with open(os.environ["SWARMQ_TEST_CALLS"], "a") as fh:
                fh.write(f"{os.getpid()} {request.seed}\n")
            if os.environ.get("SWARMQ_TEST_HANG", "\0") in request.prompt:
                if os.environ.get("SWARMQ_TEST_STUCK"):
                    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
                    time.sleep(3600)
                while True:
                    time.sleep(0.05)
            time.sleep(float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")))  # deaf to the request's cancel
            return super().generate(request)

    return Hanging()


def system_exit_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    """Prompts with SWARMQ_TEST_EXIT raise SystemExit(0) from inside the job (as buggy library code might)."""

    class Exiting(HashGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            if os.environ.get("SWARMQ_TEST_EXIT", "\0") in request.prompt:
                raise SystemExit(0)
            return super().generate(request)

    return Exiting()


def checking_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    """The stand-in, after the worker's own model-file check: a missing or broken file fails the load."""
    from swarmq.model.llama import check_model_file

    check_model_file(path)
    return hash_generator(path, cfg, gpu)


def steady_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> HashGenerator:
    """Every completion non-empty (so under `success: non_empty` every job succeeds and every buffer fills
    and trims), with two deterministic faults: ``SWARMQ_TEST_KILL_AFTER_APPLY=N`` kills -9 this worker right
    after its N-th swarm update is applied in Redis, before the applied-mark reaches Postgres; with
    ``SWARMQ_TEST_GATE_AFTER``/``SWARMQ_TEST_GATE`` generations past the first few wait for the gate file
    (as `gated_generator`)."""
    from swarmq.swarm.redis import SwarmStore

    kill_after = int(os.environ.get("SWARMQ_TEST_KILL_AFTER_APPLY", "0"))
    applied, apply = [0], SwarmStore.apply

    def apply_then_maybe_die(self, *a, **kw):  # type: ignore[no-untyped-def]
        result = apply(self, *a, **kw)
        applied[0] += result.status == "applied"
        if kill_after and applied[0] >= kill_after:
            os.kill(os.getpid(), 9)
        return result

    SwarmStore.apply = apply_then_maybe_die  # type: ignore[method-assign]
    gate = os.environ.get("SWARMQ_TEST_GATE")

    class Steady(GatedGenerator):
        def generate(self, request: GenerationRequest) -> Generation:
            gen = super().generate(request)
            return gen if gen.text else replace(gen, text=f"    return {request.seed % 97}\n")

    after = int(os.environ.get("SWARMQ_TEST_GATE_AFTER", "1000000")) if gate else 1000000
    return Steady(float(os.environ.get("SWARMQ_TEST_GEN_DELAY", "0")), after, Path(gate or "/nonexistent"))
