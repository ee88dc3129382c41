"""The worker: one per GPU. Loads the GGUF once, keeps it resident, and consumes its model's queue.

It is an ordinary Celery worker (late acks, prefetch 1 per slot: one message, of one job or several) plus a
job watch per running message (lease renewal and deadline, in `watch.py`) and housekeeping (heartbeat
record, reaper, `--burst` exit). It uses a threads pool of ``--slots K`` (1 included): each thread claims
its job, does routing and state, and hands its generation to the batching engine (`model/batched.py`), which
decodes the K sequences together; the consumer keeps the main thread, so a busy worker still answers
`inspect ping`. Task events are on, and each message is named after its job (`tasks`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from celery import signals as celery_signals
from celery.exceptions import SecurityWarning
from celery.worker.request import Request

from swarmq import keys
from swarmq.benchmarks.registry import BENCHMARKS
from swarmq.errors import ModelError, ScorerUnavailable, ServiceUnavailable
from swarmq.experiment.config import ModelConfig
from swarmq.model.base import Generator
from swarmq.model.llama import resolve_model_path
from swarmq.queue import broker
from swarmq.queue.messages import BadMessage, job_ids
from swarmq.queue.reaper import complete_unapplied
from swarmq.settings import Settings
from swarmq.store.services import Services, connect
from swarmq.streams.sync import StreamSync
from swarmq.swarm.redis import SwarmStore
from swarmq.worker.housekeeping import WorkerInfo, housekeeping, mark_stopped
from swarmq.worker.loading import choose_model, choose_slots, experiments_on, load_generator
from swarmq.worker.naming import NameLease
from swarmq.worker.runner import JobRunner, RunnerIdentity
from swarmq.worker.shutdown import GracefulShutdown, exit_worker, install_interrupts
from swarmq.worker.tasks import JobFailed, Lines, TaskNames, job_errors, task_result

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
    quiet: bool = False
    """No line per finished job on stdout."""


SWITCH_MODEL = 75
"""What `run_worker` returns when a worker that follows the work (no ``--model``) drained its model while
another has jobs: the CLI starts the process afresh (`os.execv`), which frees the model and loads the next.
Never an exit status: the process is replaced."""


def run_worker(opts: WorkerOptions, settings: Settings) -> int:
    """Serve jobs until stopped (or, with ``burst``, until nothing is left); returns the exit code, or
    `SWITCH_MODEL`. Without ``--model`` the worker follows the work: it serves a model with unfinished jobs
    (`loading.pick_model`: the most per worker already on it; ties to the oldest experiment's), moves to the
    next model when its own has nothing to run, and waits when there is nothing (unless ``burst``)."""
    gpu_uuid = None
    if opts.gpu is not None:  # before llama_cpp is imported anywhere; from here on the physical GPU index
        index, gpu_uuid = _select_gpu(opts.gpu)
        opts = replace(opts, gpu=index)
    install_interrupts()
    services = connect(settings)
    name = opts.name or f"swarmq-{'gpu' + str(opts.gpu) if opts.gpu is not None else 'cpu'}-{os.getpid()}"
    identity = RunnerIdentity(name if "@" in name else f"{name}@{socket.gethostname()}", opts.gpu, gpu_uuid)
    name_lease = NameLease(
        services.redis, identity.worker, socket.gethostname(), identity.token, settings.lease_seconds
    )
    name_lease.acquire()  # before the model loads: a name clash is refused at once
    try:
        skip: set[str] = set()
        while True:
            cfg = choose_model(services, opts.model, frozenset(skip))
            waited = False
            while cfg is None and not opts.burst:
                if not waited:
                    print(
                        f"swarmq worker {identity.worker}: no unfinished experiment; waiting for work",
                        flush=True,
                    )
                    waited = True
                time.sleep(settings.idle_poll_seconds)
                cfg = choose_model(services, opts.model, frozenset(skip))
            if cfg is None:
                return _nothing_to_serve(services)
            try:
                path = resolve_model_path(cfg.path, settings)
                slots = choose_slots(path, cfg, opts.gpu, opts.slots)
                generator = load_generator(path, cfg, opts.gpu, opts.generator, slots=slots)
            except ModelError as exc:
                key = keys.model_key(cfg.path)
                names = ", ".join(experiments_on(services, key)) or "none left"
                if opts.model is not None:
                    raise
                skip.add(key)
                if choose_model(services, None, frozenset(skip)) is None:
                    raise ModelError(f"experiment {names}: {exc}") from None
                # One experiment's missing or broken model must not idle this GPU: other work goes on.
                print(
                    f"swarmq worker {identity.worker}: experiment {names}: {exc}; serving other work instead",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            return _serve(services, opts, identity, path, cfg, generator, slots)
    finally:
        name_lease.release()


def _nothing_to_serve(services: Services) -> int:
    # A worker that died after writing the very last outcome left its swarm update half-done.
    sync = StreamSync(services.sessions, SwarmStore(services.redis))
    with services.sessions() as session:
        complete_unapplied(session, sync.complete_stream, 0.0)
    print("swarmq worker: no unfinished experiment; nothing to do")
    return 0


def _serve(
    services: Services,
    opts: WorkerOptions,
    identity: RunnerIdentity,
    path: Path,
    model_cfg: ModelConfig,
    generator: Generator,
    slots: int,
) -> int:
    settings, key = services.settings, keys.model_key(model_cfg.path)
    self_test_scorers()
    app = broker.make_app(services.redis_url, outage_seconds=settings.outage_seconds)
    # Task events, the messages this worker publishes (releases) included, so that Flower and `celery events`
    # see every task from its first; `tasks` names them and says how they ended.
    app.conf.update(worker_send_task_events=True, task_send_sent_event=True)
    lines = Lines(None if opts.quiet else lambda line: print(line, flush=True))
    runner = JobRunner(
        services.sessions,
        SwarmStore(services.redis),
        generator,
        app,
        identity,
        model_key=key,
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        outage_seconds=settings.outage_seconds,
        max_attempts=settings.max_attempts,
        stuck_seconds=settings.stuck_seconds,
        say=lines,
    )
    names = TaskNames(services.sessions)

    class NamedRequest(Request):
        """A received message, shown by its job's name (`tasks.TaskNames`) in events and `inspect`."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.name: str = names(self.args) or self.name

    @app.task(
        name=keys.TASK_NAME, acks_late=True, ignore_result=True, Request=NamedRequest, throws=(JobFailed,)
    )
    def run_job(job: int | list[int]) -> str:
        """One message: a job id, or a list of them (`broker.publish` with ``jobs_per_message``). Returns the
        jobs' lines (a Celery SUCCESS); raises `JobFailed` with the reason when one failed (a FAILURE)."""
        try:
            ids = job_ids(job)
        except BadMessage as exc:  # the transport checks every entry first (`queue.transport`): a backstop
            log.warning("queue=%s: dropped a message: %s", keys.queue_name(key), exc)
            return "dropped"
        try:
            lines.start()
            statuses = runner.run_many(ids)
            return task_result(ids, statuses, lines.take(), lambda: job_errors(services.sessions, ids))
        except ServiceUnavailable as exc:
            # Past the outage limit: exit non-zero; the job's lease expires and another worker takes it.
            exit_worker(3, f"swarmq: error: worker {identity.worker}: {exc}")
            raise  # unreachable: exit_worker raises on the main thread

    log.info(
        "worker=%s model=%s queue=%s slots=%s load_seconds=%.2f",
        identity.worker,
        path.name,
        keys.queue_name(key),
        slots,
        generator.info.load_seconds,
    )
    stop, drained = threading.Event(), threading.Event()
    info = WorkerInfo(
        identity.worker,
        socket.gethostname(),
        opts.gpu,
        generator.info.name,
        key,
        slots,
        follow=opts.model is None,
    )
    threading.Thread(
        target=housekeeping,
        args=(services, app, runner, info, opts.burst, stop, drained),
        name="swarmq-housekeeping",
        daemon=True,
    ).start()
    shutdown = GracefulShutdown(runner, services.sessions, app, settings.shutdown_grace_seconds)
    celery_signals.worker_ready.connect(lambda **_: shutdown.install(), weak=False)
    # Running as root in containers is common for GPU jobs; Celery's warning about it is noise here.
    warnings.filterwarnings("ignore", category=SecurityWarning)
    # worker_prefetch_multiplier is 1 (broker.make_app): Celery reserves concurrency × 1 messages, one a
    # slot.
    worker = app.Worker(
        hostname=identity.worker,
        queues=[keys.queue_name(key)],
        # Threads even for one slot: the consumer keeps the main thread, so a busy worker still answers
        # `celery inspect ping/active` (the solo pool runs the job there and goes silent).
        pool_cls="threads",
        concurrency=slots,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
        redirect_stdouts=False,
        loglevel=logging.getLevelName(logging.getLogger().level),
    )
    try:
        worker.start()
    finally:
        stop.set()
    rc = int(worker.exitcode or 0)
    if rc == 0:
        mark_stopped(services.redis, identity.worker)
    return SWITCH_MODEL if rc == 0 and drained.is_set() else rc


def self_test_scorers() -> None:
    """Every scorer must judge a known-good and a known-bad answer correctly here before any job is taken:
    a broken sandbox would otherwise record each outcome as a scoring error (or worse)."""
    for name, bench in BENCHMARKS.items():
        problem = bench.self_test()
        if problem is not None:
            raise ScorerUnavailable(f"{name} scorer self-test failed: {problem}")


def _select_gpu(position: int) -> tuple[int, str | None]:
    """``--gpu N`` counts the GPUs an existing CUDA_VISIBLE_DEVICES leaves visible (`devices`); pins that one
    and returns its physical (NVML) index, which the heartbeat, VRAM checks and outcomes use, and its UUID,
    which outcomes record too (inside a container the index alone says little)."""
    from swarmq.worker.devices import pin_gpu

    gpu = pin_gpu(position)
    log.info("--gpu %d: GPU %d %s (%s)", position, gpu.index, gpu.uuid, gpu.name)
    return gpu.index, gpu.uuid or None
