"""Commands that run workers: `worker` (one), `workers` (one supervised per GPU) and `workers list`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from swarmq import api
from swarmq.cli.common import Out, note, out, print_json
from swarmq.errors import ConfigError

workers_app = typer.Typer(
    help="Supervised workers, one per GPU (`swarmq workers --gpus all`), and the live-worker list.",
    invoke_without_command=True,
)

Slots = Annotated[
    int | None,
    typer.Option(
        help="Jobs decoded together in one llama.cpp context (continuous batching); "
        "default 1 on a CPU, on a GPU what its free VRAM holds for n_ctx (printed)."
    ),
]
"""``--slots`` on `worker` and `workers` alike."""


def worker(
    gpu: Annotated[
        int | None, typer.Option(help="GPU index: sets CUDA_VISIBLE_DEVICES and offloads all layers.")
    ] = None,
    cpu: Annotated[bool, typer.Option("--cpu", help="Run on the CPU (no offload).")] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="Serve only this GGUF file; default: follow the work (the model with the most unfinished "
            "jobs per worker on it; the next one when it drains; wait when there is none)."
        ),
    ] = None,
    burst: Annotated[
        bool, typer.Option("--burst", help="Exit when no job is left (for this model, or at all).")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (Celery hostname).")] = None,
    slots: Slots = None,
    generator: Annotated[
        str | None, typer.Option(hidden=True, help="module:factory stand-in generator (tests, benchmarks).")
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No line per finished job.")] = False,
) -> None:
    """Run one worker: load the model once, keep it resident, process jobs (--slots of them at once)."""
    from swarmq.worker.main import SWITCH_MODEL, WorkerOptions

    if (gpu is None) == (not cpu):
        raise ConfigError("choose exactly one of --gpu N or --cpu")
    rc = api.run_worker(
        WorkerOptions(
            gpu=gpu, model=model, burst=burst, name=name, generator=generator, slots=slots, quiet=quiet
        )
    )
    if rc == SWITCH_MODEL:  # its model drained and another has jobs: start afresh, which loads that one
        note("swarmq worker: its model's jobs are done; restarting on the next model with jobs")
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "swarmq", *sys.argv[1:]])
    raise typer.Exit(rc)


@workers_app.callback()
def workers(
    ctx: typer.Context,
    gpus: Annotated[str | None, typer.Option(help="'all' or GPU indices like 0,1,3.")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="Run N CPU workers instead (no GPU).")] = None,
    cpu: Annotated[int | None, typer.Option("--cpu", hidden=True, help="Old spelling of --cpus N.")] = None,
    model: Annotated[
        str | None, typer.Option(help="GGUF file for every worker (default: each follows the work).")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Workers exit when no job is left.")] = False,
    slots: Slots = None,
) -> None:
    """Start one supervised worker per GPU; crashed workers restart with backoff; Ctrl-C stops them all."""
    if ctx.invoked_subcommand is not None:
        return
    import threading

    from swarmq.worker.devices import gpu_positions
    from swarmq.worker.supervisor import Supervisor, install_signal_handlers, worker_command

    # Devices are singular on `worker` (--gpu N | --cpu) and plural on `workers` (--gpus LIST | --cpus N).
    if cpu is not None:
        if cpus is not None:
            raise ConfigError("workers: give --cpus N (--cpu N is its old spelling), not both")
        note("workers: `--cpu N` is now `--cpus N` (`swarmq worker --cpu` runs one CPU worker)")
        cpus = cpu
    if cpus is not None:
        if cpus < 1:
            raise ConfigError("--cpus must be at least 1")
        indices = list(range(cpus))
        command = worker_command(model=model, burst=burst, cpu=True, slots=slots)
    else:
        indices = gpu_positions(gpus or "all")  # positions among the GPUs CUDA_VISIBLE_DEVICES leaves visible
        command = worker_command(model=model, burst=burst, slots=slots)
    stop = threading.Event()
    install_signal_handlers(stop)
    out.print(f"starting {len(indices)} supervised worker(s): {', '.join(map(str, indices))}")
    sup = Supervisor(indices, command, grace_seconds=api.get_settings().supervisor_grace_seconds)
    raise typer.Exit(sup.run(stop))


@workers_app.command("list")
def workers_list(format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table) -> None:
    """Every live worker across machines (from their heartbeats); silent past its lease = lost."""
    data = api.workers()
    if format is Out.json:
        print_json(data)
    else:
        from swarmq.report.workers import render_workers

        render_workers(data, out)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(workers_app, name="workers")
