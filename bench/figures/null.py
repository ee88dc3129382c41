"""Figures 2 and 6: queue overhead with the null model, and 1 → 2 worker scaling.

swarmq: a full queue (two relaxed, unlimited streams: a plain one and an accumulating 3-agent swarm, success
`non_empty`), then 1 or 2 `swarmq worker --cpu --burst --generator bench.null:null_generator` processes; the
window runs from the first claim to the last outcome. Baseline: plain Celery on the same broker, a no-op task,
solo-pool workers started the same way (`bench/celery_noop.py`); the window runs from the first task's start
to the last task's end. One worker also runs the same experiment with `jobs_per_message: 16` (`BATCHED`): a
message carries up to 16 jobs, claimed, written and released together.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import celery_noop
from bench.env import ROOT, BenchDB, fresh_database
from bench.figures import Context
from bench.measure import FigureResult, Row, check, ratios
from bench.null import TRACE_ENV, per_job
from bench.workload import (
    NULL_GENERATOR,
    NULL_MODEL,
    SWARM_RELAXED,
    enqueue,
    experiment,
    job_window,
    run_workers,
)

KEY = "2"
TITLE = "queue overhead, null model"
WORKERS = (1, 2)
BATCHED = 16
"""jobs_per_message of the batched runs (with the default max_spread of 4, two streams release up to 8 at once)."""


def celery_noop_run(bench: BenchDB, workers: int, total: int, timeout: float = 300) -> dict[str, Any]:
    from swarmq.queue.broker import make_app

    client = bench.redis()
    celery_noop.reset(client)
    client.delete(celery_noop.QUEUE)
    celery_noop.publish(total, make_app(bench.redis_url))
    with tempfile.TemporaryDirectory(prefix="swarmq-bench-noop-") as tmp:
        logs = [Path(tmp) / f"noop{i}.log" for i in range(workers)]
        procs = []
        for log in logs:
            with log.open("wb") as fh:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.celery_noop"],
                        cwd=ROOT,
                        env=bench.env,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = time.monotonic() + timeout
        try:
            while (seconds := celery_noop.window(client)) is None:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    tail = logs[0].read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"celery no-op workers did not finish {total} tasks: {tail}")
                time.sleep(0.05)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    cpu = celery_noop.cpu_ms_per_task(client, total) if workers == 1 else None
    return {"tasks": total, "seconds": seconds, "jobs_per_s": total / seconds, "cpu_ms": cpu}


def swarmq_null_run(
    bench: BenchDB, workers: int, total: int, name: str, per_message: int = 1
) -> dict[str, Any]:
    bench.reset()
    per_replicate = 2 * 164  # two conditions over all HumanEval issues
    replicates = max(1, math.ceil(total / per_replicate))
    limit = min(164, math.ceil(total / (2 * replicates)))
    cfg = experiment(name, model=NULL_MODEL, conditions=SWARM_RELAXED, limit=limit, replicates=replicates)
    cfg["jobs_per_message"] = per_message
    enqueue(bench, cfg)
    with tempfile.TemporaryDirectory(prefix="swarmq-bench-trace-") as tmp:
        trace = Path(tmp) / "trace.jsonl"
        if workers == 1:  # one worker: one line per job, in order
            bench.env[TRACE_ENV] = str(trace)
        try:
            process_s = run_workers(bench, workers, model=NULL_MODEL, generator=NULL_GENERATOR)
        finally:
            bench.env.pop(TRACE_ENV, None)
        traced = per_job(trace)
    w = job_window(bench, name)
    if w["done"] != w["jobs"]:
        raise RuntimeError(f"{name}: only {w['done']} of {w['jobs']} jobs done")
    return {**w, "jobs_per_s": w["done"] / w["seconds"], "worker_process_seconds": process_s, "trace": traced}


def run(ctx: Context) -> list[FigureResult]:
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        "celery": {w: [] for w in WORKERS},
        "swarmq": {w: [] for w in WORKERS},
        "batched": {1: []},
    }
    with fresh_database(ctx.endpoints) as bench:
        for r in range(ctx.repeats):
            for w in WORKERS:
                ctx.say(f"  null repeat {r + 1}/{ctx.repeats}: {w} worker(s)")
                runs["celery"][w].append(celery_noop_run(bench, w, ctx.null_jobs))
                runs["swarmq"][w].append(swarmq_null_run(bench, w, ctx.null_jobs, f"null-{w}w-{r}"))
                c, s = runs["celery"][w][-1], runs["swarmq"][w][-1]
                ctx.say(
                    f"    celery no-op {c['jobs_per_s']:.0f} jobs/s; swarmq {s['jobs_per_s']:.1f} jobs/s "
                    f"({1000 / s['jobs_per_s']:.1f} ms/job, {s['jobs']} jobs)"
                )
                if w == 1:
                    runs["batched"][1].append(
                        swarmq_null_run(bench, 1, ctx.null_jobs, f"null-b{BATCHED}-{r}", per_message=BATCHED)
                    )
                    b = runs["batched"][1][-1]
                    ctx.say(f"    swarmq, {BATCHED} jobs a message: {1000 / b['jobs_per_s']:.2f} ms/job")

    def jps(side: str, w: int) -> list[float]:
        return [x["jobs_per_s"] for x in runs[side][w]]

    def ms(side: str, w: int) -> list[float]:
        return [1000 / x for x in jps(side, w)]

    base = "plain Celery no-op task, same broker and worker settings"
    fig2 = FigureResult(KEY, TITLE)
    for w in WORKERS:
        fig2.rows.append(
            Row(
                f"jobs/s, {w} worker{'s' if w > 1 else ''}",
                "jobs/s",
                jps("celery", w),
                jps("swarmq", w),
                baseline_label=base,
            )
        )
        fig2.rows.append(
            Row(
                f"ms/job, {w} worker{'s' if w > 1 else ''} (window / jobs)",
                "ms",
                ms("celery", w),
                ms("swarmq", w),
                "≤ 3 ms",
                check(ms("swarmq", w), lambda x: x <= 3),
                base,
            )
        )
        if w == 1:  # the target, per job, on a message of many jobs: ≤ 3 ms and ≤ 3× the no-op task
            ratio = ratios(ms("celery", 1), ms("batched", 1))
            met = check(ms("batched", 1), lambda x: x <= 3) and check(ratio, lambda x: x <= 3)
            fig2.rows.append(
                Row(
                    f"ms/job, 1 worker, `jobs_per_message: {BATCHED}` (window / jobs)",
                    "ms",
                    ms("celery", 1),
                    ms("batched", 1),
                    "≤ 3 ms and ≤ 3× baseline",
                    met,
                    base,
                )
            )
    traces = [x["trace"] for x in runs["swarmq"][1] if x["trace"].get("jobs")]
    if traces:  # the trace costs a little time itself: counts, not timings, are read from it

        def per_job_mean(k: str) -> list[float]:
            return [t[k] for t in traces]

        trips = per_job_mean("pg_round_trips")
        lua = [t["redis_commands"].get("EVALSHA", 0.0) for t in traces]
        fig2.rows.append(Row("per job (trace, 1 worker): SQL statements", "", None, per_job_mean("sql")))
        fig2.rows.append(
            Row("per job (trace): BEGIN, COMMIT and ROLLBACK sent", "", None, per_job_mean("tx_commands"))
        )
        fig2.rows.append(
            Row(
                "per job (trace): Postgres round trips (statements + BEGIN/COMMIT/ROLLBACK)",
                "",
                None,
                trips,
                "≤ 4",
                check(trips, lambda x: x <= 4),
            )
        )
        # A stream's first job also creates its state (one more snapshot): 2 streams add ~0.01 per job.
        fig2.rows.append(
            Row(
                "per job (trace): swarmq's Redis calls (the Lua snapshot and apply)",
                "",
                None,
                lua,
                "≤ 2",
                check(lua, lambda x: round(x, 1) <= 2),
            )
        )
        fig2.rows.append(
            Row(
                "per job (trace): Redis round trips in all, Celery's and housekeeping's included",
                "",
                None,
                per_job_mean("redis"),
            )
        )
        # The worker is one Python process: its CPU time per job bounds its rate, whatever the services do.
        noop_cpu = [x["cpu_ms"] for x in runs["celery"][1] if x.get("cpu_ms") is not None]
        fig2.rows.append(
            Row(
                "per job (trace): the worker process's CPU time (all its threads)",
                "ms",
                noop_cpu if len(noop_cpu) == len(traces) else None,
                per_job_mean("cpu_ms"),
                baseline_label="the Celery no-op worker's CPU time per task",
            )
        )
    batched_traces = [x["trace"] for x in runs["batched"][1] if x["trace"].get("jobs")]
    if batched_traces:  # what a message of many jobs pays per job

        def batched_mean(k: str) -> list[float]:
            return [t[k] for t in batched_traces]

        fig2.rows.append(
            Row(
                f"per job, `jobs_per_message: {BATCHED}` (trace): Postgres round trips",
                "",
                None,
                batched_mean("pg_round_trips"),
            )
        )
        fig2.rows.append(
            Row(
                f"per job, `jobs_per_message: {BATCHED}` (trace): the worker's CPU time",
                "ms",
                None,
                batched_mean("cpu_ms"),
            )
        )
    fig2.details = {"runs": runs, "jobs": ctx.null_jobs, "conditions": SWARM_RELAXED, "batched": BATCHED}

    def efficiency(side: str) -> list[float]:
        return [two / (2 * one) for one, two in zip(jps(side, 1), jps(side, 2), strict=True)]

    fig6 = FigureResult("6", "scaling 1 → 2 CPU workers, null model")
    fig6.rows.append(
        Row(
            "efficiency = jobs/s(2) / (2 × jobs/s(1))",
            "",
            efficiency("celery"),
            efficiency("swarmq"),
            baseline_label="the same for the Celery no-op runs of figure 2",
        )
    )
    fig6.details = {"from": "figure 2 runs"}
    return [fig2, fig6]
