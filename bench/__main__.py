"""`python -m bench`: run the figures, print one markdown table, save bench/results/<date>-<host>.json.

Benchmarks are not tests: a figure that errors or misses its target is reported, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path
from typing import Any

from bench.env import ROOT, discover, machine, versions
from bench.figures import Context
from bench.measure import FigureResult
from bench.table import render
from swarmq.errors import ConfigError, ModelError

FIGURES = {
    "e2e": "e2e",
    "null": "null",
    "enqueue": "enqueue",
    "swarm": "swarm_state",
    "results": "results_query",
    "gpuscale": "gpuscale",
    "slots": "slots",
    "prefix": "prefix",
}
"""--only key → module in bench/figures. `null` also yields figure 6 (scaling); `gpuscale` runs only on request."""
DEFAULT = ("e2e", "null", "enqueue", "swarm", "results", "slots", "prefix")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--only", default=",".join(DEFAULT), help=f"comma-separated figures ({', '.join(FIGURES)})"
    )
    p.add_argument(
        "--model", type=Path, default=Path("models/gemma-3-270m-q4_k_m.gguf"), help="GGUF for figure 1"
    )
    p.add_argument("--gpu", type=int, default=None, help="figure 1 on this GPU (worker --gpu N, all layers)")
    p.add_argument(
        "--gpus",
        default="",
        help="gpuscale: 'all' or e.g. 0,1, counted among visible GPUs like worker --gpu N",
    )
    p.add_argument("--n", type=int, default=8, help="figure 1: HumanEval prompts per repeat")
    p.add_argument("--repeats", type=int, default=3, help="repeats per measurement (min/median/max)")
    p.add_argument("--max-tokens", type=int, default=64, help="figure 1: max_tokens")
    p.add_argument(
        "--threads", type=int, default=None, help="figure 1: llama.cpp threads (default: half the cores)"
    )
    p.add_argument(
        "--slots", default="", help="figure slots: the K to sweep, e.g. 1,2,4,8,16,32 (default 1,2,4,8)"
    )
    p.add_argument(
        "--null-jobs", type=int, default=328, help="figure 2: null-model jobs per run (2 per issue)"
    )
    p.add_argument(
        "--enqueue-replicates", type=int, default=15, help="figure 3: 164 issues x 4 conditions x this"
    )
    p.add_argument(
        "--swarm-ops", type=int, default=2000, help="figure 4: route+update operations per process"
    )
    p.add_argument("--outcomes", type=int, default=1_000_000, help="figure 5: synthetic outcomes")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    p.add_argument("--no-save", action="store_true", help="print only")
    return p.parse_args(argv)


def _gpus(spec: str) -> list[int]:
    """``--gpus``: positions among the visible GPUs, each a worker's ``--gpu N``, as `swarmq workers --gpus`
    counts them (`swarmq.worker.devices`)."""
    if not spec:
        return []
    from swarmq.worker.devices import gpu_positions

    return gpu_positions(spec)


def run_figure(key: str, ctx: Context) -> list[FigureResult]:
    module = import_module(f"bench.figures.{FIGURES[key]}")
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        out = module.run(ctx)
        figs = out if isinstance(out, list) else [out]
    except Exception as exc:  # a benchmark never fails the run: report it and go on
        ctx.say(traceback.format_exc())
        figs = [
            FigureResult(
                module.KEY, module.TITLE, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            )
        ]
    for f in figs:
        f.seconds = time.perf_counter() - start
        f.details["loadavg_1min"] = {
            "before": load_before,
            "after": os.getloadavg()[0],
        }  # a noisy machine shows here
    return figs


def save(out_dir: Path, payload: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.now(UTC):%Y-%m-%d}-{payload['machine']['host']}"
    path, k = out_dir / f"{stem}.json", 2
    while path.exists():
        path, k = out_dir / f"{stem}-{k}.json", k + 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)
    return path


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in FIGURES]
    if unknown:
        print(f"unknown figure(s): {', '.join(unknown)} (choose from {', '.join(FIGURES)})", file=sys.stderr)
        return 2
    try:
        gpus = _gpus(args.gpus)
    except (ConfigError, ModelError) as exc:  # a bad --gpus, or a GPU that is not there
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    endpoints = discover()
    say(f"bench: services {endpoints.source}")
    payload: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": argv,
        "machine": machine(),
        "versions": versions(endpoints),
        "services": endpoints.source,
    }
    figures: list[FigureResult] = []
    with tempfile.TemporaryDirectory(prefix="swarmq-bench-") as tmp:
        ctx = Context(
            endpoints,
            Path(tmp),
            repeats=args.repeats,
            n=args.n,
            max_tokens=args.max_tokens,
            model=args.model,
            gpu=args.gpu,
            gpus=gpus,
            threads=args.threads,
            slots=tuple(int(k) for k in args.slots.split(",") if k.strip()),
            null_jobs=args.null_jobs,
            enqueue_replicates=args.enqueue_replicates,
            swarm_ops=args.swarm_ops,
            outcomes=args.outcomes,
            say=say,
        )
        for key in keys:
            say(f"bench: {key} ...")
            figs = run_figure(key, ctx)
            figures.extend(figs)
            say(f"bench: {key} done in {figs[0].seconds:.0f} s")
    table = render(figures)
    payload.update(
        seconds=time.perf_counter() - started,
        loadavg_at_end=list(os.getloadavg()),
        table=table,
        figures=[f.to_json() for f in figures],
    )
    print(table)
    if not args.no_save:
        say(f"bench: saved {save(args.out, payload)}")
    say(f"bench: total {payload['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
