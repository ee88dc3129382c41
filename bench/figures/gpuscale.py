"""Figure 7 (on request, `--only gpuscale`; `bench/gpu.sh` runs it): the real model, 1 worker vs N workers,
one per GPU given with `--gpus` (without GPUs: 2 CPU workers, threads split, which checks the code path more
than it measures anything). The same n × N prompts in both arms; the window is first claim to last outcome.
Baseline: linear scaling, N × the single worker's rate; the ratio is the scaling efficiency.
"""

from __future__ import annotations

from typing import Any

from bench.env import fresh_database
from bench.figures import Context
from bench.figures.e2e import ensure_model, load_settings, swarmq_side
from bench.measure import FigureResult, Row

KEY = "7"
TITLE = "1 → N workers, real model"


def _rates(sq: dict[str, Any]) -> tuple[float, float]:
    seconds = sq["window"]["seconds"]
    return len(sq["jobs"]) / seconds, sum(j["completion_tokens"] for j in sq["jobs"]) / seconds


def run(ctx: Context) -> FigureResult:
    slots: list[int | None] = list(ctx.gpus) if ctx.gpus else [None, None]
    k = len(slots)
    fig = FigureResult(KEY, f"{TITLE} ({k} {'GPUs' if ctx.gpus else 'CPU workers'})")
    if k < 2:
        fig.error = "needs at least 2 GPUs (--gpus all or e.g. --gpus 0,1)"
        return fig
    model = ensure_model(ctx.model)
    load = load_settings(ctx, model, workers=k)
    if ctx.gpus:
        load.update(gpu=slots[0], n_gpu_layers=-1, threads=ctx.threads)
    limit = min(164, ctx.n * k)
    one: dict[str, list[float]] = {"jobs": [], "tokens": []}
    many: dict[str, list[float]] = {"jobs": [], "tokens": []}
    with fresh_database(ctx.endpoints) as bench:
        for r in range(ctx.repeats):
            for arm, chosen in ((one, slots[:1]), (many, slots)):
                bench.reset()
                ctx.say(f"  gpuscale repeat {r + 1}/{ctx.repeats}: {len(chosen)} worker(s), {limit} prompts")
                jps, tps = _rates(swarmq_side(bench, ctx, f"scale{len(chosen)}-{r}", load, limit, chosen))
                arm["jobs"].append(jps)
                arm["tokens"].append(tps)
    base = f"linear: {k} × one worker's rate"
    fig.rows = [
        Row("jobs/s, 1 worker", "jobs/s", None, one["jobs"], baseline_label=base),
        Row(
            f"jobs/s, {k} workers", "jobs/s", [k * x for x in one["jobs"]], many["jobs"], baseline_label=base
        ),
        Row(
            f"generated tok/s (wall), {k} workers",
            "tok/s",
            [k * x for x in one["tokens"]],
            many["tokens"],
            baseline_label=base,
        ),
    ]
    fig.details = {"slots": slots, "prompts": limit, "load": load, "one": one, "many": many}
    return fig
