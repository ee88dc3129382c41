"""The worker: one per GPU. Loads the GGUF once, keeps it resident, and consumes its model's queue.

It is an ordinary Celery worker (solo pool, one job at a time, prefetch 1, late acks) plus two threads:
the job heartbeat (lease renewal, in `job.py`) and housekeeping (the reaper, and `--burst` exit).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SecurityWarning
from sqlalchemy import text

from swarmq import broker
from swarmq.config import ModelConfig
from swarmq.errors import ModelError, SwarmqError
from swarmq.job import JobRunner, RunnerIdentity
from swarmq.model import Generator, LlamaGenerator, check_fits, check_model_file
from swarmq.reaper import reap
from swarmq.services import Services, connect
from swarmq.settings import Settings
from swarmq.swarm import SwarmStore

log = logging.getLogger(__name__)
GeneratorFactory = Callable[[Path, ModelConfig, int | None], Generator]


@dataclass(frozen=True)
class WorkerOptions:
    gpu: int | None = None
    model: str | None = None
    burst: bool = False
    name: str | None = None
    generator: str | None = None
    """``module:callable`` building a stand-in Generator (benchmarks' null model, tests). Not for users."""


def run_worker(opts: WorkerOptions, settings: Settings) -> int:
    if opts.gpu is not None:
        _select_gpu(opts.gpu)  # before llama_cpp is imported anywhere
    services = connect(settings)
    found = _model_for(services, opts.model)
    if found is None:
        if opts.burst:
            print("swarmq worker: no unfinished experiment; nothing to do")
            return 0
        raise ModelError("no --model given and no unfinished experiment to take it from")
    path, model_cfg = found
    key = broker.model_key(str(path))
    if opts.generator is None:
        check_model_file(path)
        _check_memory(path, opts.gpu)
    generator = _load(opts, path, model_cfg)
    name = opts.name or f"swarmq-{'gpu' + str(opts.gpu) if opts.gpu is not None else 'cpu'}-{os.getpid()}"
    hostname = name if "@" in name else f"{name}@{socket.gethostname()}"
    app = broker.make_app(services.redis_url)
    runner = JobRunner(
        services.sessions,
        SwarmStore(services.redis),
        generator,
        app,
        RunnerIdentity(hostname, opts.gpu),
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
    )

    @app.task(name=broker.TASK_NAME, acks_late=True, ignore_result=True)
    def run_job(job_id: int) -> str:
        return runner.run(int(job_id))

    log.info("worker=%s model=%s queue=%s load_seconds=%.2f", hostname, path.name, broker.queue_name(key),
             generator.info.load_seconds)  # fmt: skip
    stop = threading.Event()
    housekeeping = threading.Thread(
        target=_housekeeping, args=(services, app, runner, key, opts.burst, stop), name="swarmq-housekeeping",
        daemon=True,
    )  # fmt: skip
    housekeeping.start()
    # Running as root in containers is common for GPU jobs; Celery's warning about it is noise here.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    worker = app.Worker(
        hostname=hostname,
        queues=[broker.queue_name(key)],
        pool_cls="solo",
        concurrency=1,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
        loglevel=logging.getLevelName(logging.getLogger().level),
    )
    try:
        worker.start()
    finally:
        stop.set()
    return int(worker.exitcode or 0)


def _select_gpu(index: int) -> None:
    from swarmq.gpus import list_gpus

    gpus = list_gpus()
    if index not in [g.index for g in gpus]:
        found = ", ".join(str(g.index) for g in gpus) or "none"
        raise ModelError(f"--gpu {index}: no such GPU on this machine (found: {found}); use --cpu without one")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)


def _check_memory(path: Path, gpu: int | None) -> None:
    if gpu is not None:
        from swarmq.gpus import list_gpus

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


def _model_for(services: Services, explicit: str | None) -> tuple[Path, ModelConfig] | None:
    """The model to serve and its load settings: ``--model``, else what the oldest unfinished experiment
    needs. Load settings (n_ctx, threads, ...) come from the oldest unfinished experiment on that model."""
    rows = _unfinished_models(services)
    if explicit is not None:
        key = broker.model_key(explicit)
        cfg = next((ModelConfig.model_validate(c) for c, k in rows if k == key), None)
        return resolve_model_path(explicit, services.settings), cfg or ModelConfig(path=explicit)
    if not rows:
        return None
    cfg = ModelConfig.model_validate(rows[0][0])
    return resolve_model_path(cfg.path, services.settings), cfg


def _unfinished_models(services: Services) -> list[tuple[dict[str, Any], str]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.config->'model', e.model_key FROM experiments e WHERE EXISTS (SELECT 1 FROM jobs j "
                "WHERE j.experiment_id = e.id AND j.status IN ('pending', 'queued', 'running')) ORDER BY e.created_at"
            )
        ).all()
    return [(dict(r[0]), str(r[1])) for r in rows]


def resolve_model_path(path: str, settings: Settings) -> Path:
    """As given (relative to the current directory), else by file name in SWARMQ_MODELS_DIR."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    alt = settings.models_dir / p.name
    return alt if alt.exists() else p


def _load(opts: WorkerOptions, path: Path, cfg: ModelConfig) -> Generator:
    if opts.generator:
        module, _, attr = opts.generator.partition(":")
        factory: GeneratorFactory = getattr(importlib.import_module(module), attr)
        return factory(path, cfg, opts.gpu)
    return LlamaGenerator(
        path,
        name=cfg.label,
        n_ctx=cfg.n_ctx,
        n_gpu_layers=cfg.n_gpu_layers if opts.gpu is not None else 0,
        threads=cfg.threads,
        n_batch=cfg.n_batch,
        gpu_index=opts.gpu,
    )


def _housekeeping(services: Services, app: Any, runner: JobRunner, key: str, burst: bool,
                  stop: threading.Event) -> None:  # fmt: skip
    """Reap every few seconds; in burst mode, stop the worker once its model has nothing left to do."""
    from celery.worker import state as worker_state

    settings = services.settings
    interval = 0.5 if burst else settings.reaper_seconds
    ticks = 0
    while not stop.wait(interval):
        ticks += 1
        try:
            if ticks * interval >= settings.reaper_seconds:
                ticks = 0
                reap(services.sessions, app, services.redis, max_attempts=settings.max_attempts,
                     grace_seconds=settings.reaper_seconds * 2, complete_stream=runner.sync.complete_stream)  # fmt: skip
            if burst and runner.current_job is None and _nothing_left(services, key):
                log.info("burst: no job left for model queue %s; stopping", key)
                worker_state.should_stop = 0
                return
        except SwarmqError as exc:
            log.warning("housekeeping: %s", exc)
        except Exception as exc:  # a service blip; the next pass retries
            log.warning("housekeeping failed: %s", exc)


def _nothing_left(services: Services, key: str) -> bool:
    with services.engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
                "WHERE e.model_key = :k AND j.status IN ('pending', 'queued', 'running')"
            ),
            {"k": key},
        ).scalar_one()
    return int(n) == 0
