"""Which model a worker serves and loading it once: `--model`, else the unfinished work's (`pick_model`); the
file checked (exists, is a GGUF, fits in free RAM or VRAM) before any job is touched."""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

from swarmq import keys
from swarmq.errors import ConfigError
from swarmq.experiment.config import ModelConfig
from swarmq.model import gguf
from swarmq.model.base import Generator, GeneratorFactory
from swarmq.model.llama import check_fits, check_model_file
from swarmq.model.schedule import MAX_HOLDERS, MAX_SLOTS, default_holders, default_slots, kv_bytes_per_token
from swarmq.queue import jobs
from swarmq.store import heartbeats
from swarmq.store.services import Services

HOLDER_SHARE_GPU = 0.2
"""Share of a GPU's free VRAM kept for prefix-cache holders when the slots are chosen from it."""
GPU_RESERVE = 1 << 30
"""VRAM left free for compute buffers and the CUDA context (as `default_slots` leaves)."""


def choose_model(
    services: Services, explicit: str | None, skip: frozenset[str] = frozenset()
) -> ModelConfig | None:
    """The model to serve and its load settings: ``--model``, else the one `pick_model` takes among those with
    unfinished jobs (but the ``skip`` keys: models this worker could not load). Load settings (n_ctx, threads,
    ...) come from the oldest unfinished experiment on it."""
    with services.sessions() as session:
        rows = [(c, k) for c, k in jobs.unfinished_models(session) if k not in skip]
    if explicit is not None:
        key = keys.model_key(explicit)
        cfg = next((ModelConfig.model_validate(c) for c, k in rows if k == key), None)
        return cfg.model_copy(update={"path": explicit}) if cfg else ModelConfig(path=explicit)
    if not rows:
        return None
    with services.sessions() as session:
        pending = [(k, jobs.unfinished_count(session, k)) for _, k in rows]
    chosen = pick_model(pending, live_workers_per_model(services))
    return next(ModelConfig.model_validate(c) for c, k in rows if k == chosen)


def experiments_on(services: Services, model_key: str) -> list[str]:
    """Names of the active experiments with unfinished jobs on a model (what a load failure concerns)."""
    with services.sessions() as session:
        return jobs.experiments_on(session, model_key)


def pick_model(pending: list[tuple[str, int]], serving: dict[str, int]) -> str:
    """The model a worker that follows the work takes (pure): the most unfinished jobs per worker already on
    it, so that `workers --gpus all` spreads the models over the GPUs by their pending work; ties go to the
    oldest experiment's (the first). ``pending`` lists (model key, unfinished jobs), oldest experiment
    first."""
    return max(pending, key=lambda kn: (kn[1] / (1 + serving.get(kn[0], 0)), -pending.index(kn)))[0]


def live_workers_per_model(services: Services) -> dict[str, int]:
    """How many live workers serve each model, from their heartbeats."""
    now, out = time.time(), dict[str, int]()
    for record in heartbeats.records(services.redis):
        model = record.get("model_key")
        if model and heartbeats.state(record, now) == "live":
            out[model] = out.get(model, 0) + 1
    return out


def choose_slots(path: Path, cfg: ModelConfig, gpu: int | None, asked: int | None) -> int:
    """``--slots`` as given; else 1 on a CPU, and on a GPU as many sequences of ``n_ctx`` as its free VRAM
    holds beside the weights (printed, so the choice is visible)."""
    if asked is not None:
        if not 1 <= asked <= MAX_SLOTS:
            raise ConfigError(f"--slots must be between 1 and {MAX_SLOTS}, not {asked}")
        return asked
    if gpu is None:
        return 1
    from swarmq.worker.gpus import list_gpus

    free = next((g.memory_free for g in list_gpus() if g.index == gpu), None)
    if free is None or not path.is_file():
        return 1
    try:
        per_token = kv_bytes_per_token(gguf.metadata(path))
    except (OSError, ValueError):
        per_token = None
    # With the prefix cache on, a share of the VRAM stays for its holders (`choose_holders`).
    room = int(free * (1 - HOLDER_SHARE_GPU)) if cfg.prefix_cache else free
    slots = default_slots(room, path.stat().st_size, cfg.n_ctx, per_token)
    print(
        f"swarmq worker: --slots {slots} (GPU {gpu}: {free / 2**30:.1f} GiB free, n_ctx {cfg.n_ctx}, "
        f"{(per_token or 0) * cfg.n_ctx / 2**20:.0f} MiB of KV cache per slot)",
        flush=True,
    )
    return slots


def choose_holders(path: Path, cfg: ModelConfig, gpu: int | None, slots: int) -> int:
    """Prefix-cache holders beside the slots (printed, like the slots): 0 with ``model.prefix_cache: false``;
    else as many sequences of ``n_ctx`` as fit in a share of the memory left after the weights and the slots
    (VRAM on a GPU, RAM on a CPU), at most `MAX_HOLDERS`."""
    if not cfg.prefix_cache:
        print("swarmq worker: prefix cache off (model.prefix_cache: false)", flush=True)
        return 0
    try:
        per_token = kv_bytes_per_token(gguf.metadata(path))
    except (OSError, ValueError):
        per_token = None
    if per_token is None:
        print(
            f"swarmq worker: prefix cache off ({path.name}: KV cache size not in the GGUF header)", flush=True
        )
        return 0
    seq_bytes = per_token * cfg.n_ctx
    free = _free_memory(gpu)
    left = free - path.stat().st_size - slots * seq_bytes
    # A GPU's compute buffers need the reserve the slots leave; a CPU's RAM is shared with everything else.
    if gpu is not None:
        holders = default_holders(left - GPU_RESERVE, seq_bytes, MAX_HOLDERS, share=1.0)
    else:
        holders = default_holders(left, seq_bytes, MAX_HOLDERS, share=0.25)
    print(
        f"swarmq worker: prefix cache {holders} holders ({seq_bytes / 2**20:.0f} MiB of KV cache each, "
        f"{left / 2**30:.1f} GiB free beside the weights and {slots} slot(s))",
        flush=True,
    )
    return holders


def load_generator(
    path: Path, cfg: ModelConfig, gpu: int | None, stand_in: str | None = None, *, slots: int = 1
) -> Generator:
    """llama.cpp on the model file (checked first), or the stand-in named ``module:callable``. Every slot
    count runs through the generation engine (one context of ``slots`` sequences and the prefix cache's
    holders), so ``--slots 1`` and ``--slots K`` share one prompt-reuse rule."""
    if stand_in:
        module, _, attr = stand_in.partition(":")
        factory: GeneratorFactory = getattr(importlib.import_module(module), attr)
        return factory(path, cfg, gpu)
    check_model_file(path)
    check_memory(path, gpu)
    from swarmq.model.batched import BatchedGenerator

    return BatchedGenerator(
        path,
        slots=slots,
        holders=choose_holders(path, cfg, gpu, slots),
        name=cfg.label,
        n_ctx=cfg.n_ctx,
        n_gpu_layers=cfg.n_gpu_layers if gpu is not None else 0,
        threads=cfg.threads,
        n_batch=cfg.n_batch,
    )


def _free_memory(gpu: int | None) -> int:
    if gpu is not None:
        from swarmq.worker.gpus import list_gpus

        free = next((g.memory_free for g in list_gpus() if g.index == gpu), None)
        return free if free is not None else 0
    return _available_ram()


def check_memory(path: Path, gpu: int | None) -> None:
    if gpu is not None:
        from swarmq.worker.gpus import list_gpus

        free = next((g.memory_free for g in list_gpus() if g.index == gpu), None)
        if free is not None:
            check_fits(path, free, f"VRAM on GPU {gpu}")
        return
    check_fits(path, _available_ram(), "RAM")


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
