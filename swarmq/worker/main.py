"""The worker: one per GPU. Loads the GGUF once, keeps it resident, and consumes its model's queue.

It is an ordinary Celery worker (late acks, prefetch 1 per slot) plus a job watch per running job (lease
renewal and deadline, in `watch.py`) and housekeeping (heartbeat record, reaper, `--burst` exit). With one
slot it uses the solo pool: one job at a time, on the main thread. With ``--slots K`` it uses a threads pool
of K: each thread claims its job, does routing and state, and hands its generation to the batching engine
(`model/batched.py`), which decodes the K sequences together; a busy worker still answers `inspect ping`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from celery import signals as celery_signals
from celery.exceptions import SecurityWarning

from swarmq import keys
from swarmq.benchmarks.registry import BENCHMARKS
from swarmq.errors import ModelError, ScorerUnavailable, ServiceUnavailable
from swarmq.experiment.config import ModelConfig
from swarmq.queue import broker
from swarmq.queue.reaper import complete_unapplied
from swarmq.settings import Settings
from swarmq.store.services import Services, connect
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.sync import StreamSync
from swarmq.worker.housekeeping import WorkerInfo, housekeeping
from swarmq.worker.loading import choose_model, choose_slots, load_generator
from swarmq.worker.naming import NameLease
from swarmq.worker.runner import JobRunner, RunnerIdentity
from swarmq.worker.shutdown import GracefulShutdown, exit_worker, install_interrupts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    gpu: int | None = None
    model: str | None = None
    burst: bool = False
    name: str | None = None
    generator: str | None = None
    """``module:callable`` building a stand-in Generator (benchmarks' null model, tests). Not for users."""
    slots: int | None = None
    """Jobs decoded together; None: 1 on a CPU, on a GPU what its free VRAM holds (`loading.choose_slots`)."""


def run_worker(opts: WorkerOptions, settings: Settings) -> int:
    """Serve jobs until stopped (or, with ``burst``, until the model has none left); returns the exit code."""
    if opts.gpu is not None:
        _select_gpu(opts.gpu)  # before llama_cpp is imported anywhere
    install_interrupts()
    services = connect(settings)
    name = opts.name or f"swarmq-{'gpu' + str(opts.gpu) if opts.gpu is not None else 'cpu'}-{os.getpid()}"
    identity = RunnerIdentity(name if "@" in name else f"{name}@{socket.gethostname()}", opts.gpu)
    name_lease = NameLease(
        services.redis, identity.worker, socket.gethostname(), identity.token, settings.lease_seconds
    )
    name_lease.acquire()  # before the model loads: a name clash is refused at once
    try:
        found = choose_model(services, opts.model)
        if found is None:
            return _nothing_to_serve(services, opts.burst)
        return _serve(services, opts, identity, *found)
    finally:
        name_lease.release()


def _nothing_to_serve(services: Services, burst: bool) -> int:
    if not burst:
        raise ModelError("no --model given and no unfinished experiment to take it from")
    # A worker that died after writing the very last outcome left its swarm update half-done.
    sync = StreamSync(services.sessions, SwarmStore(services.redis))
    with services.sessions() as session:
        complete_unapplied(session, sync.complete_stream, 0.0)
    print("swarmq worker: no unfinished experiment; nothing to do")
    return 0


def _serve(services: Services, opts: WorkerOptions, identity: RunnerIdentity, path: Path,
           model_cfg: ModelConfig) -> int:  # fmt: skip
    settings, key = services.settings, keys.model_key(str(path))
    slots = choose_slots(path, model_cfg, opts.gpu, opts.slots)
    generator = load_generator(path, model_cfg, opts.gpu, opts.generator, slots=slots)
    self_test_scorers()
    app = broker.make_app(services.redis_url)
    runner = JobRunner(services.sessions, SwarmStore(services.redis), generator, app, identity,
                       lease_seconds=settings.lease_seconds, heartbeat_seconds=settings.heartbeat_seconds,
                       outage_seconds=settings.outage_seconds, max_attempts=settings.max_attempts,
                       stuck_seconds=settings.stuck_seconds)  # fmt: skip

    @app.task(name=keys.TASK_NAME, acks_late=True, ignore_result=True)
    def run_job(job_id: int) -> str:
        try:
            return runner.run(int(job_id))
        except ServiceUnavailable as exc:
            # Past the outage limit: exit non-zero; the job's lease expires and another worker takes it.
            exit_worker(3, f"swarmq: error: worker {identity.worker}: {exc}")
            raise  # unreachable: exit_worker raises on the main thread

    log.info("worker=%s model=%s queue=%s slots=%s load_seconds=%.2f", identity.worker, path.name,
             keys.queue_name(key), slots, generator.info.load_seconds)  # fmt: skip
    stop = threading.Event()
    info = WorkerInfo(identity.worker, socket.gethostname(), opts.gpu, generator.info.name, key, slots)
    threading.Thread(target=housekeeping, args=(services, app, runner, info, opts.burst, stop),
                     name="swarmq-housekeeping", daemon=True).start()  # fmt: skip
    shutdown = GracefulShutdown(runner, services.sessions, app, settings.shutdown_grace_seconds)
    celery_signals.worker_ready.connect(lambda **_: shutdown.install(), weak=False)
    # Running as root in containers is common for GPU jobs; Celery's warning about it is noise here.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    # worker_prefetch_multiplier is 1 (broker.make_app): Celery reserves concurrency × 1 messages, one per slot.
    worker = app.Worker(hostname=identity.worker, queues=[keys.queue_name(key)],
                        pool_cls="solo" if slots == 1 else "threads", concurrency=slots,
                        without_mingle=True, without_gossip=True, quiet=True,
                        loglevel=logging.getLevelName(logging.getLogger().level))  # fmt: skip
    try:
        worker.start()
    finally:
        stop.set()
    return int(worker.exitcode or 0)


def self_test_scorers() -> None:
    """Every scorer must judge a known-good and a known-bad answer correctly here before any job is taken:
    a broken sandbox would otherwise record each outcome as a scoring error (or worse)."""
    for name, bench in BENCHMARKS.items():
        problem = bench.self_test()
        if problem is not None:
            raise ScorerUnavailable(f"{name} scorer self-test failed: {problem}")


def _select_gpu(index: int) -> None:
    from swarmq.worker.gpus import list_gpus

    gpus = list_gpus()
    if index not in [g.index for g in gpus]:
        found = ", ".join(str(g.index) for g in gpus) or "none"
        raise ModelError(f"--gpu {index}: no such GPU on this machine (found: {found}); use --cpu without one")
    # NVML and nvidia-smi number GPUs in PCI bus order; CUDA's default is fastest first. Make them agree.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
