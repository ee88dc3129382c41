"""Figure "prefix": the prefix cache of the generation engine (issue 23).

(a) The shipped demo experiment cut to 3 issues and 4 replicates (36 jobs, 12 strict streams), one CPU worker,
`--slots 4` and `--slots 1`, each with the cache on and off (`model.prefix_cache: false`), the four runs back
to back in one bench run; jobs/s from the jobs' own window (first claim to last outcome), and the worker's CPU
seconds (its sandboxed scoring processes included) with the load average beside each run, since wall time on
a shared machine is noisy. (b) A fixed-buffer
stream through the engine alone (`bench/prefix_stream.py`: 24 jobs, 3 agents with 2 examples each, 64 new
tokens), cache on against off at K = 1 and K = 4, with the prompt tokens evaluated. (c) The K = 1 cached texts
at T = 0 against fresh one-pass runs of the same prompts.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

import yaml

from bench.env import ROOT, BenchDB, fresh_database
from bench.figures import Context
from bench.figures.e2e import ensure_model
from bench.measure import FigureResult, Row, check, ratios
from bench.workload import job_window, write_config

KEY = "prefix"
TITLE = "prefix: prompts evaluated once (prefix cache in the engine)"
ISSUES, REPLICATES = 3, 4
HOLDERS = 8
"""Holders for the stream part (the worker chooses its own from memory, and prints them)."""


def demo_config(name: str, model: str, cache: bool, threads: int | None) -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load((ROOT / "swarmq" / "data" / "demo.yaml").read_text())
    cfg["name"] = name
    cfg["dataset"]["instance_ids"] = cfg["dataset"]["instance_ids"][:ISSUES]
    cfg["replicates"] = REPLICATES
    cfg["model"].update(path=model, prefix_cache=cache)
    if threads is not None:
        cfg["model"]["threads"] = threads
    return cfg


def demo_run(bench: BenchDB, ctx: Context, model: str, k: int, cache: bool, name: str) -> dict[str, Any]:
    bench.swarmq("enqueue", str(write_config(demo_config(name, model, cache, ctx.threads), ctx.workdir)))
    cmd = [sys.executable, "-m", "swarmq", "worker", "--burst", "--slots", str(k), "--model", model]
    cmd += ["--name", f"bench-prefix-{k}", "--cpu"]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, cwd=ROOT, env=bench.env, capture_output=True, text=True, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if r.returncode != 0:
        raise RuntimeError(f"worker --slots {k} exited {r.returncode}: {(r.stdout + r.stderr)[-2000:]}")
    window = job_window(bench, name)
    with bench.connect() as conn:
        rows = conn.execute(
            "SELECT o.prompt_tokens, coalesce(o.prompt_cached_tokens, 0), o.prompt_seconds, o.generation_seconds, "
            "o.scoring_seconds, o.job_seconds, o.completion, j.instance_id, j.replicate, j.condition "
            "FROM outcomes o JOIN jobs j ON j.id = o.job_id JOIN experiments e ON e.id = j.experiment_id "
            "WHERE e.name = %s ORDER BY j.condition, j.instance_id, j.replicate",
            (name,),
        ).fetchall()
    prompt = sum(r[0] for r in rows)
    cached = sum(r[1] for r in rows)
    return {
        "slots": k,
        "cache": cache,
        "window": window,
        "jobs_s": len(rows) / window["seconds"] if window["seconds"] else 0.0,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "hits": sum(1 for r in rows if r[1] > 0),
        "jobs": len(rows),
        "cpu_seconds": cpu,
        "load": [load, os.getloadavg()[0]],
        "seconds": {  # per job, summed: where the time goes
            "prompt": sum(r[2] or 0 for r in rows),
            "generation": sum(r[3] or 0 for r in rows),
            "scoring": sum(r[4] or 0 for r in rows),
            "job": sum(r[5] or 0 for r in rows),
        },
        "texts": [r[6] for r in rows],
        "printed": [line for line in r.stdout.splitlines() if "prefix cache" in line or "--slots" in line],
    }


def stream_run(ctx: Context, model: str) -> dict[str, Any]:
    spec, out = ctx.workdir / "prefix-stream.json", ctx.workdir / "prefix-stream.out.json"
    threads = ctx.threads or 1
    spec.write_text(
        json.dumps(
            {
                "model": model,
                "n_ctx": 2048,
                "threads": threads,
                "max_tokens": 64,
                "slots": [1, 4],
                "holders": HOLDERS,
            }
        )
    )
    # stderr passes through: its progress lines are the part's only output until it ends.
    r = subprocess.run(
        [sys.executable, "-m", "bench.prefix_stream", str(spec), str(out)], cwd=ROOT, text=True, timeout=3600
    )
    if r.returncode != 0:
        raise RuntimeError(f"prefix stream exited {r.returncode}")
    res: dict[str, Any] = json.loads(out.read_text())
    return res


def run(ctx: Context) -> FigureResult:
    fig = FigureResult(KEY, TITLE)
    model = str(ensure_model(ctx.model))
    details: dict[str, Any] = {"issues": ISSUES, "replicates": REPLICATES, "demo": [], "stream": None}
    if ctx.gpu is None:
        demo_part(ctx, model, fig, details)
    stream_part(ctx, model, fig, details)
    fig.details = details
    return fig


def demo_part(ctx: Context, model: str, fig: FigureResult, details: dict[str, Any]) -> None:
    demo: dict[tuple[int, bool], dict[str, Any]] = {}
    with fresh_database(ctx.endpoints) as bench:
        for k, cache in ((1, False), (4, False), (1, True), (4, True)):  # side by side, alternating K
            bench.reset()
            ctx.say(f"  prefix (a): demo 36 jobs, --slots {k}, cache {'on' if cache else 'off'}")
            run_ = demo_run(bench, ctx, model, k, cache, f"prefix-{k}-{int(cache)}")
            demo[(k, cache)] = run_
            ctx.say(
                f"    {run_['jobs_s']:.3f} jobs/s, {run_['cpu_seconds']:.1f} CPU s, "
                f"{run_['cached_tokens']}/{run_['prompt_tokens']} cached, load {run_['load'][0]:.1f}"
            )
            details["demo"].append({key: v for key, v in run_.items() if key != "texts"})
    js = {key: [r["jobs_s"]] for key, r in demo.items()}
    label = "same 36 jobs, one CPU worker"
    fig.rows += [
        _row("(a) demo: --slots 4 ÷ --slots 1, cache on, jobs/s", js[(1, True)], js[(4, True)], 1.5, label),
        _row("(a) demo: --slots 1, cache on ÷ off, jobs/s", js[(1, False)], js[(1, True)], 1.3, label),
        _row("(a) demo: --slots 4, cache on ÷ off, jobs/s", js[(4, False)], js[(4, True)], 1.3, label),
        Row("(a) demo: --slots 4 ÷ --slots 1, cache off, jobs/s", "jobs/s", js[(1, False)], js[(4, False)]),
    ]
    for k in (1, 4):
        off, on = demo[(k, False)], demo[(k, True)]
        fig.rows.append(
            Row(
                f"(a) demo K={k}: worker CPU seconds per job, sandbox included (cache off, on)",
                "s",
                [off["cpu_seconds"] / max(1, off["jobs"])],
                [on["cpu_seconds"] / max(1, on["jobs"])],
            )
        )
        fig.rows.append(
            Row(
                f"(a) demo K={k}: jobs that hit / prompt tokens from the cache (%)",
                "",
                [float(on["hits"])],
                [100.0 * on["cached_tokens"] / max(1, on["prompt_tokens"])],
            )
        )
    same = sum(a == b for a, b in zip(demo[(1, True)]["texts"], demo[(1, False)]["texts"], strict=False))
    fig.rows.append(Row("(a) demo K=1: texts identical cache on vs off (of 36)", "", None, [float(same)]))
    # At K > 1 llama.cpp's batch shapes may move a near-tie; a changed text can change later routing too.
    pairs = zip(demo[(4, True)]["texts"], demo[(1, True)]["texts"], strict=False)
    same_k = sum(a == b for a, b in pairs)
    fig.rows.append(Row("(a) demo cache on: texts identical K=4 vs K=1 (of 36)", "", None, [float(same_k)]))


def stream_part(ctx: Context, model: str, fig: FigureResult, details: dict[str, Any]) -> None:
    ctx.say("  prefix (b, c): fixed-buffer stream through the engine")
    stream = stream_run(ctx, model)
    details["stream"] = {
        "runs": [{k: v for k, v in r.items() if k != "texts"} for r in stream["runs"]],
        "identical_k1_vs_fresh": stream["identical_k1_vs_fresh"],
    }
    by = {(r["slots"], bool(r["holders"])): r for r in stream["runs"]}
    label = "engine, cache off (holders 0), same 24 prompts"
    for k in sorted({k for k, _ in by}):
        off, on = by[(k, False)], by[(k, True)]
        fig.rows.append(
            _row(f"(b) stream K={k}: cache on ÷ off, jobs/s", [off["jobs_s"]], [on["jobs_s"]], 1.3, label)
        )
        fig.rows.append(
            Row(
                f"(b) stream K={k}: prompt tokens evaluated (of {on['prompt_tokens']})",
                "tokens",
                [float(off["prompt_eval_tokens"])],
                [float(on["prompt_eval_tokens"])],
                None,
                None,
                label,
            )
        )
    n = stream["jobs"]
    fig.rows.append(
        Row(
            f"(c) K=1 cached T=0 texts identical to fresh one-pass runs (of {n})",
            "",
            None,
            [float(stream["identical_k1_vs_fresh"])],
            f"= {n}",
            stream["identical_k1_vs_fresh"] == n,
            "Llama, reset before each prompt",
        )
    )


def _row(metric: str, base: list[float], new: list[float], target: float, label: str) -> Row:
    return Row(
        metric,
        "jobs/s",
        base,
        new,
        f"ratio ≥ {target}",
        check(ratios(base, new), lambda x: x >= target),
        label,
    )
