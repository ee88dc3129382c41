"""What the figures run through swarmq: experiment files, enqueueing, worker subprocesses, and job timings."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bench.env import ROOT, BenchDB

NULL_MODEL = "models/null.gguf"
NULL_GENERATOR = "bench.null:null_generator"
BASELINE = {"baseline": {"agents": 1, "router": "single", "accumulate": False}}
"""One agent, no memory: prompts are the bare HumanEval prompts."""
SWARM_RELAXED = {
    "baseline": {"agents": 1, "router": "single", "accumulate": False},
    "swarm": {"agents": 3, "router": "affinity", "accumulate": True, "ordering": "relaxed", "max_show": 2},
}
"""The null-model mix: a plain stream and an accumulating 3-agent swarm, both with no in-flight limit."""


def experiment(
    name: str,
    *,
    model: str,
    conditions: dict[str, Any],
    limit: int | None = None,
    replicates: int = 1,
    max_tokens: int = 64,
    threads: int | None = None,
    n_ctx: int = 2048,
    success: str = "non_empty",
    n_gpu_layers: int = -1,
) -> dict[str, Any]:
    model_cfg: dict[str, Any] = {"path": model, "n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers}
    if threads is not None:
        model_cfg["threads"] = threads
    dataset: dict[str, Any] = {"benchmark": "humaneval", "source": "bundled"}
    if limit is not None:
        dataset["limit"] = limit
    return {
        "name": name,
        "seed": 11,
        "dataset": dataset,
        "model": model_cfg,
        "generation": {"max_tokens": max_tokens, "temperature": 0.0, "top_p": 1.0, "seed": 0},
        "conditions": conditions,
        "replicates": replicates,
        "success": {"rule": success},
    }


def write_config(cfg: dict[str, Any], directory: Path) -> Path:
    path = directory / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@cache
def humaneval_issues() -> tuple[Any, ...]:
    """All 164 bundled HumanEval issues, read once per bench process (datasets is slow to import)."""
    from swarmq.experiment.config import DatasetConfig
    from swarmq.experiment.dataset import load_issues

    return tuple(load_issues(DatasetConfig(benchmark="humaneval", source="bundled"), 0))


def enqueue(bench: BenchDB, cfg: dict[str, Any]) -> Any:
    """swarmq's producer, in process (setup for figures that do not time enqueueing)."""
    from swarmq.experiment.config import ExperimentConfig
    from swarmq.queue.broker import make_app
    from swarmq.queue.producer import enqueue as do_enqueue

    config = ExperimentConfig.model_validate(cfg)
    issues = list(humaneval_issues())[: config.dataset.limit]
    svc = bench.services
    return do_enqueue(svc.sessions, make_app(svc.redis_url), config, issues)


def start_worker(
    bench: BenchDB,
    log: Path,
    *,
    model: str,
    generator: str | None = None,
    gpu: int | None = None,
    name: str | None = None,
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "swarmq", "worker", "--burst", "--model", model]
    cmd += ["--gpu", str(gpu)] if gpu is not None else ["--cpu"]
    if generator:
        cmd += ["--generator", generator]
    if name:
        cmd += ["--name", name]
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, cwd=ROOT, env=bench.env, stdout=fh, stderr=subprocess.STDOUT)


def run_workers(
    bench: BenchDB,
    count: int,
    *,
    model: str,
    generator: str | None = None,
    gpus: list[int | None] | None = None,
    timeout: float = 600,
) -> float:
    """Start ``count`` burst workers, wait for all to exit; returns their wall time (start to last exit)."""
    gpus = gpus or [None] * count
    with tempfile.TemporaryDirectory(prefix="swarmq-bench-") as tmp:
        logs = [Path(tmp) / f"worker{i}.log" for i in range(count)]
        start = time.perf_counter()
        procs = [
            start_worker(bench, logs[i], model=model, generator=generator, gpu=gpus[i], name=f"bench{i}")
            for i in range(count)
        ]
        try:
            for p in procs:
                p.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        wall = time.perf_counter() - start
        bad = [
            (p.returncode, log.read_text(errors="replace")[-2000:])
            for p, log in zip(procs, logs, strict=True)
            if p.returncode
        ]
    if bad:
        raise RuntimeError(f"worker exited {bad[0][0]}: {bad[0][1]}")
    return wall


def job_window(bench: BenchDB, experiment_name: str) -> dict[str, Any]:
    """From the first claim to the last outcome, by the jobs' own timestamps (worker start-up and the burst
    exit check are outside it). Also counts jobs done and delivered more than once."""
    with bench.connect() as conn:
        row = conn.execute(
            """
            SELECT extract(epoch FROM max(j.finished_at) - min(j.started_at)), count(*),
                   count(*) FILTER (WHERE j.status = 'done'), count(*) FILTER (WHERE j.attempts > 1)
            FROM jobs j JOIN experiments e ON e.id = j.experiment_id WHERE e.name = %s
            """,
            (experiment_name,),
        ).fetchone()
    assert row is not None
    seconds, jobs, done, retried = row
    return {"seconds": float(seconds or 0.0), "jobs": int(jobs), "done": int(done), "retried": int(retried)}
