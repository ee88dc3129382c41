"""The worker's housekeeping thread: its heartbeat for `swarmq workers list`, the reaper, the folding of new
outcomes into the results aggregates (`store.aggregates.fold`), and the end of a
`--burst` run. Failing for longer than the outage limit (Postgres or Redis gone) ends the worker (exit 3)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import Celery

from swarmq import keys
from swarmq.errors import first_line
from swarmq.queue import jobs
from swarmq.queue.reaper import complete_unapplied, reap
from swarmq.states import IN_FLIGHT
from swarmq.store import aggregates
from swarmq.store.services import Services
from swarmq.worker.runner import JobRunner
from swarmq.worker.shutdown import exit_worker

log = logging.getLogger(__name__)
BURST_POLL_SECONDS = 0.5
"""How often a `--burst` worker checks whether its model has anything left."""


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    gpu: int | None
    model: str
    model_key: str
    slots: int = 1
    follow: bool = False
    """No ``--model``: stop (to load another model) once this one drains while another model has jobs."""


def housekeeping(
    services: Services,
    app: Celery,
    runner: JobRunner,
    info: WorkerInfo,
    burst: bool,
    stop: threading.Event,
    drained: threading.Event | None = None,
) -> None:
    """Every pass: publish this worker's heartbeat, reap; stop once the model has nothing left, in burst mode,
    or (following the work) when another model has jobs; ``drained`` says the stop was for that."""
    from celery.worker import state as worker_state

    settings = services.settings
    interval = BURST_POLL_SECONDS if burst else min(settings.reaper_seconds, settings.heartbeat_seconds)
    last_reap = 0.0
    failing_since: float | None = None
    while not stop.wait(interval):
        try:
            publish_heartbeat(
                services.redis, info, runner, settings.lease_seconds, settings.worker_record_seconds
            )
            if time.monotonic() - last_reap >= settings.reaper_seconds:
                last_reap = time.monotonic()
                reap(
                    services.sessions,
                    app,
                    services.redis,
                    max_attempts=settings.max_attempts,
                    grace_seconds=settings.reaper_seconds * 2,
                    complete_stream=runner.sync.complete_stream,
                )
                # Outcomes are counted into the results aggregates off the job path, a batch per pass.
                aggregates.fold(services.engine, batch=aggregates.FOLD_BATCH, wait=False)
            step = (
                _next_step(services, info, burst) if (burst or info.follow) and not runner.running() else None
            )
            if step is not None:
                with services.sessions() as session:  # leave no half-applied swarm update behind
                    complete_unapplied(session, runner.sync.complete_stream, 0.0, info.model_key)
                log.warning("no job to take for model queue %s; %s", info.model_key, step)
                if step != "stopping" and drained is not None:
                    drained.set()
                worker_state.should_stop = 0
                return
            failing_since = None
        except Exception as exc:  # a service blip; the next pass retries
            failing_since = failing_since or time.monotonic()
            down = time.monotonic() - failing_since
            log.warning("housekeeping failed (%.0f s): %s", down, first_line(exc))
            if down > settings.outage_seconds and not runner.running():
                exit_worker(
                    3,
                    f"swarmq: error: worker {info.name}: Postgres or Redis unavailable for {down:.0f} s: "
                    f"{first_line(exc)}",
                )
                return


def _next_step(services: Services, info: WorkerInfo, burst: bool) -> str | None:
    """None: keep serving. A worker that follows the work moves to another model once its own has nothing
    queued or running while another has unfinished jobs (its own may have pending ones, held back by the
    position window until the other model's streams move: staying would wait forever). A burst worker stops
    once nothing is left for it."""
    with services.sessions() as session:
        if jobs.unfinished_count(session, info.model_key, IN_FLIGHT):
            return None
        others = [k for _, k in jobs.unfinished_models(session) if k != info.model_key] if info.follow else []
        if others:
            return f"moving to {others[0]}"
        left = jobs.unfinished_count(session, info.model_key)
    return "stopping" if burst and not left else None


def _gpu_stats(gpu: int | None) -> dict[str, str]:
    """Name and memory in use of this worker's GPU (NVML sees all GPUs, whatever CUDA_VISIBLE_DEVICES
    says)."""
    if gpu is None:
        return {}
    from swarmq.worker.gpus import list_gpus

    found = next((g for g in list_gpus() if g.index == gpu), None)
    if found is None:
        return {}
    return {"gpu_name": found.name, "vram_used_mb": f"{(found.memory_total - found.memory_free) / 2**20:.0f}"}


def publish_heartbeat(
    redis: Any, info: WorkerInfo, runner: JobRunner, lease_seconds: float, keep_seconds: float
) -> None:
    """What `swarmq workers list` shows; kept ``keep_seconds`` so a silent worker can be shown as lost."""
    key = keys.worker_key(info.name)
    running = runner.running()
    oldest = min(running, key=lambda j: running[j]) if running else None
    redis.hset(
        key,
        mapping={
            "name": info.name,
            "host": info.host,
            "gpu": "" if info.gpu is None else str(info.gpu),
            "model": info.model,
            "current_job": oldest or "",
            "job_started": running[oldest] if oldest else "",
            "jobs_done": runner.jobs_done,
            "model_key": info.model_key,
            "slots": info.slots,
            "busy_slots": runner.busy(),
            "current_jobs": ",".join(map(str, sorted(running))),
            "tokens_per_second": f"{runner.mean_tokens_per_second():.2f}",
            "last_seen": time.time(),
            "lease_seconds": lease_seconds,
            "pid": os.getpid(),
            "stopped_at": "",
            **_gpu_stats(info.gpu),
        },
    )
    redis.expire(key, int(keep_seconds))


def mark_stopped(redis: Any, name: str) -> None:
    """A clean exit: `workers list` shows the worker as stopped, not live and then lost."""
    key = keys.worker_key(name)
    if redis.exists(key):
        redis.hset(key, "stopped_at", time.time())
