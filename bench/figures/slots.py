"""Figure "slots": continuous batching in one worker. The same jobs through `swarmq worker --slots K` for
K = 1, 2, 4, 8 (8 and more on request), against llama-cpp-python's low-level batch API driven by hand
(`bench/raw_batched.py`) with K sequences, and the single-sequence raw loop (K = 1 of the same loop).

The raw loop generates exactly the tokens swarmq generated for each job (greedy, end-of-generation ignored),
so both sides do the same work. Windows: swarmq from the first claim to the last outcome write (queue work
included, model load excluded); the raw loop from its first decode to its last token.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.env import ROOT, BenchDB, fresh_database
from bench.figures import Context
from bench.figures.e2e import ensure_model, load_settings
from bench.measure import FigureResult, Row, check, ratios
from bench.workload import BASELINE, experiment, job_window, write_config

KEY = "slots"
TITLE = "slots: continuous batching, swarmq vs a raw low-level batched loop"
SLOTS = (1, 2, 4, 8)


def swarmq_run(bench: BenchDB, ctx: Context, load: dict[str, Any], k: int, name: str) -> dict[str, Any]:
    cfg = experiment(
        name,
        model=load["model"],
        conditions=BASELINE,
        limit=ctx.n,
        max_tokens=ctx.max_tokens,
        threads=load["threads"],
        n_ctx=load["n_ctx"],
    )
    # One relaxed stream: the fairness window (max_spread, default 4 positions) would cap it at 4 jobs in
    # flight, and K=8 would measure the window, not the engine.
    cfg["max_spread"] = max(ctx.n, k)
    bench.swarmq("enqueue", str(write_config(cfg, ctx.workdir)))
    cmd = [
        sys.executable,
        "-m",
        "swarmq",
        "worker",
        "--burst",
        "--slots",
        str(k),
        "--model",
        load["model"],
        "--name",
        f"bench-slots{k}",
    ]
    cmd += ["--gpu", str(ctx.gpu)] if ctx.gpu is not None else ["--cpu"]
    r = subprocess.run(cmd, cwd=ROOT, env=bench.env, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"worker --slots {k} exited {r.returncode}: {(r.stdout + r.stderr)[-2000:]}")
    window = job_window(bench, name)
    with bench.connect() as conn:
        rows = conn.execute(
            "SELECT o.prompt, o.chat, o.completion_tokens, o.completion, o.mean_batch_size, j.instance_id "
            "FROM outcomes o JOIN jobs j ON j.id = o.job_id JOIN experiments e ON e.id = j.experiment_id "
            "WHERE e.name = %s ORDER BY j.seq",
            (name,),
        ).fetchall()
    jobs = [
        {"prompt": p, "chat": c, "completion_tokens": t, "completion": text, "mean_batch": b, "id": i}
        for p, c, t, text, b, i in rows
    ]
    tokens = sum(j["completion_tokens"] for j in jobs)
    return {
        "window": window,
        "jobs": jobs,
        "tok_s": tokens / window["seconds"],
        "jobs_s": len(jobs) / window["seconds"],
        "tokens": tokens,
    }


def raw_run(ctx: Context, load: dict[str, Any], jobs: list[dict[str, Any]], k: int) -> dict[str, Any]:
    spec, out = ctx.workdir / f"rawb-{k}.json", ctx.workdir / f"rawb-{k}.out.json"
    spec.write_text(json.dumps({**load, "slots": k, "jobs": jobs}))
    r = subprocess.run(
        [sys.executable, "-m", "bench.raw_batched", str(spec), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if r.returncode != 0:
        raise RuntimeError(f"raw batched loop exited {r.returncode}: {r.stderr[-2000:]}")
    res: dict[str, Any] = json.loads(out.read_text())
    res["tok_s"], res["jobs_s"] = res["generated"] / res["seconds"], res["jobs"] / res["seconds"]
    return res


def run(ctx: Context) -> FigureResult:
    fig = FigureResult(KEY, TITLE)
    model = ensure_model(ctx.model)
    load = load_settings(ctx, model)
    sweep = ctx.slots or SLOTS
    sq: dict[int, list[float]] = {k: [] for k in sweep}
    sq_jobs: dict[int, list[float]] = {k: [] for k in sweep}
    raw: dict[int, list[float]] = {k: [] for k in sweep}
    raw_jobs: dict[int, list[float]] = {k: [] for k in sweep}
    details: dict[str, Any] = {"load": load, "n": ctx.n, "max_tokens": ctx.max_tokens, "runs": []}
    texts: dict[int, list[str]] = {}
    with fresh_database(ctx.endpoints) as bench:
        for rep in range(ctx.repeats):
            for k in sweep:
                bench.reset()
                ctx.say(f"  slots repeat {rep + 1}/{ctx.repeats}: swarmq --slots {k}")
                s = swarmq_run(bench, ctx, load, k, f"slots-{rep}-{k}")
                ctx.say(f"  slots repeat {rep + 1}/{ctx.repeats}: raw batched loop, {k} sequence(s)")
                a = raw_run(ctx, load, s["jobs"], k)
                sq[k].append(s["tok_s"])
                sq_jobs[k].append(s["jobs_s"])
                raw[k].append(a["tok_s"])
                raw_jobs[k].append(a["jobs_s"])
                texts.setdefault(k, [j["completion"] for j in s["jobs"]])
                ctx.say(
                    f"    K={k}: swarmq {s['tok_s']:.1f} tok/s, raw {a['tok_s']:.1f} tok/s "
                    f"({s['tokens']} tokens, mean batch {_mean([j['mean_batch'] or 1 for j in s['jobs']]):.2f})"
                )
                details["runs"].append(
                    {
                        "repeat": rep,
                        "slots": k,
                        "swarmq_window": s["window"],
                        "swarmq_tokens": s["tokens"],
                        "raw": a,
                        "mean_batch": [j["mean_batch"] for j in s["jobs"]],
                    }
                )
    base = "raw low-level batched loop (bench/raw_batched.py), same jobs and token counts"
    for k in sweep:
        fig.rows.append(
            Row(
                f"K={k}: aggregate generated tok/s (tokens / wall)",
                "tok/s",
                raw[k],
                sq[k],
                "ratio ≥ 0.95",
                check(ratios(raw[k], sq[k]), lambda x: x >= 0.95),
                base,
            )
        )
        fig.rows.append(Row(f"K={k}: jobs/s", "jobs/s", raw_jobs[k], sq_jobs[k], None, None, base))
    if 1 in sweep:
        fig.rows.append(
            Row(
                "single-sequence raw loop vs swarmq --slots 1, tok/s",
                "tok/s",
                raw[1],
                sq[1],
                None,
                None,
                "raw loop, one sequence",
            )
        )
        for k in sweep:
            if k > 1:
                target = "≥ 1.8" if k == 4 else None
                fig.rows.append(
                    Row(
                        f"swarmq K={k} ÷ swarmq K=1, tok/s",
                        "×",
                        sq[1],
                        sq[k],
                        target,
                        check(ratios(sq[1], sq[k]), lambda x: x >= 1.8) if k == 4 else None,
                        "swarmq --slots 1",
                    )
                )
        same = {k: sum(a == b for a, b in zip(texts[1], texts[k], strict=True)) for k in sweep if k in texts}
        details["identical_texts_vs_slots1"] = same
        n = len(texts[1])
        for k in sweep:
            if k > 1:
                fig.rows.append(
                    Row(
                        f"texts identical to --slots 1 at T=0 (of {n}), K={k}",
                        "",
                        None,
                        [float(same[k])],
                        None,
                        None,
                        "swarmq --slots 1",
                    )
                )
    fig.details = details
    return fig


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
