"""Which model a worker serves and loading it once: `--model`, else what the oldest unfinished experiment
needs; the file checked (exists, is a GGUF, fits in free RAM or VRAM) before any job is touched."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from swarmq import keys
from swarmq.experiment.config import ModelConfig
from swarmq.model.base import Generator, GeneratorFactory
from swarmq.model.llama import LlamaGenerator, check_fits, check_model_file, resolve_model_path
from swarmq.queue import jobs
from swarmq.store.services import Services


def choose_model(services: Services, explicit: str | None) -> tuple[Path, ModelConfig] | None:
    """The model to serve and its load settings: ``--model``, else what the oldest unfinished experiment
    needs. Load settings (n_ctx, threads, ...) come from the oldest unfinished experiment on that model."""
    with services.sessions() as session:
        rows = jobs.unfinished_models(session)
    if explicit is not None:
        key = keys.model_key(explicit)
        cfg = next((ModelConfig.model_validate(c) for c, k in rows if k == key), None)
        return resolve_model_path(explicit, services.settings), cfg or ModelConfig(path=explicit)
    if not rows:
        return None
    cfg = ModelConfig.model_validate(rows[0][0])
    return resolve_model_path(cfg.path, services.settings), cfg


def load_generator(path: Path, cfg: ModelConfig, gpu: int | None, stand_in: str | None = None) -> Generator:
    """llama.cpp on the model file (checked first), or the stand-in named ``module:callable``."""
    if stand_in:
        module, _, attr = stand_in.partition(":")
        factory: GeneratorFactory = getattr(importlib.import_module(module), attr)
        return factory(path, cfg, gpu)
    check_model_file(path)
    check_memory(path, gpu)
    return LlamaGenerator(path, name=cfg.label, n_ctx=cfg.n_ctx, n_gpu_layers=cfg.n_gpu_layers if gpu is not None else 0,
                          threads=cfg.threads, n_batch=cfg.n_batch)  # fmt: skip


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
