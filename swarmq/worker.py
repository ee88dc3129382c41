"""The worker: one per GPU. Loads the GGUF once, keeps it resident, and consumes its model's queue.

It is an ordinary Celery worker (solo pool, one job at a time, prefetch 1, late acks) plus two threads:
the job heartbeat (lease renewal, in `job.py`) and housekeeping (the reaper, and `--burst` exit).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import signals as celery_signals
from celery.exceptions import SecurityWarning
from sqlalchemy import text

from swarmq import broker, store
from swarmq.config import ModelConfig
from swarmq.errors import ModelError, ServiceUnavailable, first_line
from swarmq.job import JobRunner, RunnerIdentity
from swarmq.model import Generator, LlamaGenerator, check_fits, check_model_file
from swarmq.reaper import complete_unapplied, reap
from swarmq.services import Services, connect
from swarmq.settings import Settings
from swarmq.swarm import SwarmStore
from swarmq.sync import StreamSync

log = logging.getLogger(__name__)
WORKER_KEY_PREFIX = "swarmq:worker:"
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
            # A worker that died after writing the very last outcome left its swarm update half-done.
            sync = StreamSync(services.sessions, SwarmStore(services.redis))
            with services.sessions() as session:
                complete_unapplied(session, sync.complete_stream, 0.0)
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
        outage_seconds=settings.outage_seconds,
        max_attempts=settings.max_attempts,
    )

    @app.task(name=broker.TASK_NAME, acks_late=True, ignore_result=True)
    def run_job(job_id: int) -> str:
        try:
            return runner.run(int(job_id))
        except ServiceUnavailable as exc:
            # Past the outage limit: exit non-zero; the job's lease expires and another worker takes it.
            _die(f"swarmq: error: worker {hostname}: {exc}", 3)
            raise  # unreachable; keeps type checkers honest

    log.info("worker=%s model=%s queue=%s load_seconds=%.2f", hostname, path.name, broker.queue_name(key),
             generator.info.load_seconds)  # fmt: skip
    stop = threading.Event()
    info = WorkerInfo(hostname, socket.gethostname(), opts.gpu, generator.info.name, key)
    housekeeping = threading.Thread(
        target=_housekeeping, args=(services, app, runner, info, opts.burst, stop), name="swarmq-housekeeping",
        daemon=True,
    )  # fmt: skip
    housekeeping.start()
    shutdown = GracefulShutdown(runner, services, app, settings.shutdown_grace_seconds)
    celery_signals.worker_ready.connect(lambda **_: shutdown.install(), weak=False)
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


def _die(message: str, code: int) -> None:
    print(message, file=sys.stderr, flush=True)
    os._exit(code)


class GracefulShutdown:
    """SIGTERM/SIGINT: finish the current job (up to the grace period), then exit. Past the grace period the
    job is released (queued again), not lost. A second signal exits at once; the lease then expires."""

    def __init__(self, runner: JobRunner, services: Services, app: Any, grace_seconds: float) -> None:
        self.runner, self.services, self.app, self.grace = runner, services, app, grace_seconds
        self.signals = 0

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        from celery.worker import state as worker_state

        self.signals += 1
        if self.signals > 1:
            _die("swarmq: worker: second signal: exiting now (the running job's lease will expire)", 1)
        job = self.runner.current_job
        log.warning("signal %s: %s, then exiting (send it again to exit at once)", signum,
                    f"finishing job {job} (grace {self.grace:.0f} s)" if job else "no job running")  # fmt: skip
        worker_state.should_stop = 0
        if job is not None:
            threading.Thread(target=self._expire, args=(job,), name="swarmq-grace", daemon=True).start()

    def _expire(self, job_id: int) -> None:
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            if self.runner.current_job != job_id:
                return
            time.sleep(0.2)
        with self.services.sessions() as session:
            released = store.release_job(session, job_id, self.runner.identity.worker)
            key = session.scalar(
                text("SELECT e.model_key FROM jobs j JOIN experiments e ON e.id = j.experiment_id WHERE j.id = :i"),
                {"i": job_id},
            )
        if released and key:
            broker.publish(self.app, [(job_id, str(key))])
        _die(f"swarmq: worker: grace period over: job {job_id} {'released' if released else 'was not ours'}", 0)


def _select_gpu(index: int) -> None:
    from swarmq.gpus import list_gpus

    gpus = list_gpus()
    if index not in [g.index for g in gpus]:
        found = ", ".join(str(g.index) for g in gpus) or "none"
        raise ModelError(f"--gpu {index}: no such GPU on this machine (found: {found}); use --cpu without one")
    # NVML and nvidia-smi number GPUs in PCI bus order; CUDA's default is fastest first. Make them agree.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
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


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    gpu: int | None
    model: str
    model_key: str


def _housekeeping(services: Services, app: Any, runner: JobRunner, info: WorkerInfo, burst: bool,
                  stop: threading.Event) -> None:  # fmt: skip
    """Every pass: publish this worker's heartbeat, reap; in burst mode, stop once the model has nothing
    left. Failing for longer than the outage limit (Postgres or Redis gone) ends the worker non-zero."""
    from celery.worker import state as worker_state

    settings = services.settings
    interval = 0.5 if burst else min(settings.reaper_seconds, settings.heartbeat_seconds)
    last_reap = 0.0
    failing_since: float | None = None
    while not stop.wait(interval):
        try:
            publish_heartbeat(services.redis, info, runner, settings.lease_seconds)
            if time.monotonic() - last_reap >= settings.reaper_seconds:
                last_reap = time.monotonic()
                reap(services.sessions, app, services.redis, max_attempts=settings.max_attempts,
                     grace_seconds=settings.reaper_seconds * 2, complete_stream=runner.sync.complete_stream)  # fmt: skip
            if burst and runner.current_job is None and _nothing_left(services, info.model_key):
                with services.sessions() as session:  # leave no half-applied swarm update behind
                    complete_unapplied(session, runner.sync.complete_stream, 0.0, info.model_key)
                log.info("burst: no job left for model queue %s; stopping", info.model_key)
                worker_state.should_stop = 0
                return
            failing_since = None
        except Exception as exc:  # a service blip; the next pass retries
            failing_since = failing_since or time.monotonic()
            down = time.monotonic() - failing_since
            log.warning("housekeeping failed (%.0f s): %s", down, first_line(exc))
            if down > settings.outage_seconds and runner.current_job is None:
                _die(
                    f"swarmq: error: worker {info.name}: Postgres or Redis unavailable for {down:.0f} s: {first_line(exc)}",
                    3,
                )


def _gpu_stats(gpu: int | None) -> dict[str, str]:
    """Name and memory in use of this worker's GPU (NVML sees all GPUs, whatever CUDA_VISIBLE_DEVICES says)."""
    if gpu is None:
        return {}
    from swarmq.gpus import list_gpus

    found = next((g for g in list_gpus() if g.index == gpu), None)
    if found is None:
        return {}
    return {"gpu_name": found.name, "vram_used_mb": f"{(found.memory_total - found.memory_free) / 2**20:.0f}"}


def publish_heartbeat(redis: Any, info: WorkerInfo, runner: JobRunner, lease_seconds: float) -> None:
    """What `swarmq workers list` shows; kept an hour so a silent worker can be shown as lost."""
    key = f"{WORKER_KEY_PREFIX}{info.name}"
    redis.hset(key, mapping={
        "name": info.name, "host": info.host, "gpu": "" if info.gpu is None else str(info.gpu), "model": info.model,
        "current_job": runner.current_job or "", "job_started": runner.job_started or "", "jobs_done": runner.jobs_done,
        "tokens_per_second": f"{runner.mean_tokens_per_second():.2f}", "last_seen": time.time(),
        "lease_seconds": lease_seconds, "pid": os.getpid(), **_gpu_stats(info.gpu),
    })  # fmt: skip
    redis.expire(key, 3600)


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
