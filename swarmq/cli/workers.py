"""Commands that run workers: `worker` (one), `workers` (one supervised per GPU) and `workers list`."""

from __future__ import annotations

from typing import Annotated

import typer

from swarmq import api
from swarmq.cli.common import Fmt, out, print_json
from swarmq.errors import ConfigError
from swarmq.settings import get_settings

workers_app = typer.Typer(
    help="Supervised workers, one per GPU (`swarmq workers --gpus all`), and the live-worker list.",
    invoke_without_command=True,
)


def worker(
    gpu: Annotated[
        int | None, typer.Option(help="GPU index: sets CUDA_VISIBLE_DEVICES and offloads all layers.")
    ] = None,
    cpu: Annotated[bool, typer.Option("--cpu", help="Run on the CPU (no offload).")] = False,
    model: Annotated[
        str | None, typer.Option(help="GGUF file; default: what the oldest unfinished experiment needs.")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit when no job for this model is left.")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (Celery hostname).")] = None,
    generator: Annotated[
        str | None, typer.Option(hidden=True, help="module:factory stand-in generator (tests, benchmarks).")
    ] = None,
) -> None:
    """Run one worker: load the model once, keep it resident, process jobs one at a time."""
    from swarmq.worker.main import WorkerOptions

    if (gpu is None) == (not cpu):
        raise ConfigError("choose exactly one of --gpu N or --cpu")
    raise typer.Exit(api.run_worker(WorkerOptions(gpu=gpu, model=model, burst=burst, name=name, generator=generator)))


@workers_app.callback()
def workers(
    ctx: typer.Context,
    gpus: Annotated[str | None, typer.Option(help="'all' or GPU indices like 0,1,3.")] = None,
    cpu: Annotated[int | None, typer.Option("--cpu", help="Run N CPU workers instead (no GPU).")] = None,
    model: Annotated[str | None, typer.Option(help="GGUF file for every worker.")] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Workers exit when no job is left.")] = False,
) -> None:
    """Start one supervised worker per GPU; crashed workers restart with backoff; Ctrl-C stops them all."""
    if ctx.invoked_subcommand is not None:
        return
    import threading

    from swarmq.worker.gpus import list_gpus, parse_gpu_list
    from swarmq.worker.supervisor import Supervisor, install_signal_handlers, worker_command

    if cpu is not None:
        if cpu < 1:
            raise ConfigError("--cpu must be at least 1")
        indices = list(range(cpu))
        command = worker_command(model=model, burst=burst, cpu=True)
    else:
        found = list_gpus()
        if not found:
            raise ConfigError(
                "no GPU found on this machine (NVML and nvidia-smi see none); use --cpu N to run N CPU workers"
            )
        try:
            indices = parse_gpu_list(gpus or "all", found)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        command = worker_command(model=model, burst=burst)
    stop = threading.Event()
    install_signal_handlers(stop)
    out.print(f"starting {len(indices)} supervised worker(s): {', '.join(map(str, indices))}")
    sup = Supervisor(indices, command, grace_seconds=get_settings().supervisor_grace_seconds)
    raise typer.Exit(sup.run(stop))


@workers_app.command("list")
def workers_list(format: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table) -> None:
    """Every live worker across machines (from their heartbeats); silent past its lease = lost."""
    data = api.workers()
    if format is Fmt.json:
        print_json(data)
    else:
        from swarmq.report.workers import render_workers

        render_workers(data, out)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.add_typer(workers_app, name="workers")
