"""`swarmq workers list`: live workers across machines, from the heartbeats they publish to Redis."""

from __future__ import annotations

import math
import time
from typing import Any

import redis as redis_lib
from rich.console import Console

from swarmq import keys
from swarmq.experiment.config import ExperimentConfig
from swarmq.report.columns import Column, fitted
from swarmq.store import heartbeats


def workers_json(redis: redis_lib.Redis, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    workers = []
    for raw in heartbeats.records(redis):
        started = float(raw["job_started"]) if raw.get("job_started") else None
        workers.append(
            {
                "name": raw.get("name"),
                "host": raw.get("host"),
                "gpu": int(raw["gpu"]) if raw.get("gpu") else None,
                "gpu_name": raw.get("gpu_name") or None,
                "vram_used_mb": float(raw["vram_used_mb"]) if raw.get("vram_used_mb") else None,
                "model": raw.get("model"),
                "current_job": int(raw["current_job"]) if raw.get("current_job") else None,
                "current_jobs": [int(j) for j in raw.get("current_jobs", "").split(",") if j]
                or ([int(raw["current_job"])] if raw.get("current_job") else []),
                "slots": int(raw.get("slots") or 1),
                "model_key": raw.get("model_key") or None,
                "busy_slots": int(raw["busy_slots"])
                if raw.get("busy_slots")
                else int(bool(raw.get("current_job"))),
                "job_seconds": round(now - started, 1) if started else None,
                "jobs_done": int(raw.get("jobs_done", 0)),
                "tokens_per_second": float(raw.get("tokens_per_second", 0)),
                "last_heartbeat_seconds_ago": _seconds(heartbeats.age(raw, now)),
                "state": heartbeats.state(raw, now),
            }
        )
    return {"workers": workers}


def _seconds(age: float) -> float | None:
    return round(age, 1) if math.isfinite(age) else None  # None: no beat recorded


def runnable_streams(config: ExperimentConfig) -> int:
    """How many jobs of the experiment can run at once: a strict stream runs one at a time, a relaxed one up
    to ``max_in_flight`` and never more than the jobs in ``max_spread`` positions (the position window,
    `queue.jobs.release`; a position holds an issue's ``generation.samples``)."""
    window = config.max_spread * config.generation.samples
    per_stream = [min(limit or window, window) for limit in config.in_flight_limits().values()]
    return sum(per_stream) * config.replicates


def slots_warning(workers: dict[str, Any], config: ExperimentConfig) -> str | None:
    """A warning when the live workers serving the experiment's model have more slots than its streams can
    fill: the extra slots stay idle (strict ordering bounds concurrency by the number of streams)."""
    key = keys.model_key(config.model.path)
    live = [w for w in workers["workers"] if w["state"] == "live" and w.get("model_key") in (None, key)]
    slots, runnable = sum(w["slots"] for w in live), runnable_streams(config)
    if slots <= runnable:
        return None
    return (
        f"warning: {len(live)} live worker(s) with {slots} slots in all serve this model, but {config.name} "
        f"can run only {runnable} job(s) at once (its streams' ordering and max_spread); "
        f"{slots - runnable} slot(s) stay idle"
    )


WORKER_COLUMNS = (
    Column("name"),
    Column("state"),
    Column("busy", priority=1, right=True),
    Column("model", priority=2),
    Column("gpu", priority=3),
    Column("done", priority=4, right=True),
    Column("jobs", priority=5),
    Column("running s", priority=6, right=True),
    Column("tok/s", priority=7, right=True),
    Column("heartbeat", priority=8, right=True),
    Column("host", priority=9),
    Column("VRAM MB", priority=10, right=True),
)
"""`workers list`, most useful first: at 80 columns the name, state, busy slots and model stay whole, and
the rest go from the right (`columns.fitted`)."""


def render_workers(data: dict[str, Any], console: Console) -> None:
    if not data["workers"]:
        console.print(
            "no worker has published a heartbeat (start one with `swarmq worker --gpu 0` or `--cpu`)"
        )
        return
    rows = []
    for w in data["workers"]:
        gpu = "cpu" if w["gpu"] is None else f"{w['gpu']} {w['gpu_name'] or ''}".strip()
        rows.append(
            [
                w["name"],
                w["state"],
                f"{w['busy_slots']}/{w['slots']}",
                w["model"] or "-",
                gpu,
                str(w["jobs_done"]),
                ",".join(map(str, w["current_jobs"])) or "-",
                str(w["job_seconds"] or "-"),
                f"{w['tokens_per_second']:.1f}",
                "-"
                if w["last_heartbeat_seconds_ago"] is None
                else f"{w['last_heartbeat_seconds_ago']:.0f} s ago",
                w["host"] or "-",
                "-" if w["vram_used_mb"] is None else f"{w['vram_used_mb']:.0f}",
            ]
        )
    console.print(fitted(WORKER_COLUMNS, rows, console.size.width, title="swarmq workers"))
