"""Commands on experiments: enqueue, status, results, export, import-eval, plot, replay."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from swarmq import api
from swarmq.cli.common import Fmt, Out, note, out, print_json, print_json_line
from swarmq.errors import REPLAY_DIFFERS, ConfigError

WATCH_FORMAT = "table or json (with --watch: one JSON object per line, each time the progress changes)"


def enqueue(
    config: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    name: Annotated[str | None, typer.Option(help="Experiment name (overrides the file's).")] = None,
    limit: Annotated[
        int | None, typer.Option(help="Run only the first N issues (overrides dataset.limit).")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Then show live progress until it completes.")
    ] = False,
    format: Annotated[Out, typer.Option("--format", help=WATCH_FORMAT)] = Out.table,
    model_on_workers: Annotated[
        bool,
        typer.Option(
            "--model-on-workers", help="The model file exists only where workers run: skip its check."
        ),
    ] = False,
) -> None:
    """Create the experiment and publish one job per (condition, replicate, issue); re-run to resume."""
    cfg = api.load_experiment(config, name=name, limit=limit)
    result = api.enqueue(cfg, progress=note, model_on_workers=model_on_workers)
    verb = "resumed" if result.resumed else "enqueued"
    if format is Out.json:
        (print_json_line if watch else print_json)(dataclasses.asdict(result))
    else:
        out.print(
            f"{verb} experiment {result.experiment}: {result.jobs} jobs ({result.published} published"
            + (f", {result.done} already done)" if result.resumed else ")")
        )
    from swarmq.report.workers import slots_warning  # more slots than the streams can fill stay idle

    if (warning := slots_warning(api.workers(), cfg)) is not None:
        note(warning)
    from swarmq.report.design import replicates_warning  # few swarms: comparisons hold for these only

    accumulating = sorted(c for c, cond in cfg.conditions.items() if cond.accumulate)
    if (warning := replicates_warning(cfg.replicates, accumulating)) is not None:
        note(warning)
    if watch:
        _watch(result.experiment, format)


def _watch(experiment: str, format: Out) -> None:
    from swarmq.report.progress import watch_json, watch_progress

    if format is Out.json:
        watch_json(api.connect().sessions, experiment, print_json_line)
    else:
        watch_progress(api.connect().sessions, experiment, out, live_workers=_live_workers)


def _live_workers() -> int:
    """For the hint `--watch` shows while no ETA can be given and no worker is there."""
    return sum(w["state"] == "live" for w in api.workers()["workers"])


def status(
    experiment: Annotated[str | None, typer.Argument(help="Experiment name (omit with --workers).")] = None,
    format: Annotated[Out, typer.Option("--format", help=WATCH_FORMAT)] = Out.table,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until nothing is left to run.")] = False,
    workers: Annotated[bool, typer.Option("--workers", help="List live workers instead.")] = False,
) -> None:
    """Progress per condition and replicate: done / running / failed / queued, successes, ETA."""
    if workers:
        from swarmq.cli.workers import workers_list

        workers_list(format)
        return
    if experiment is None:
        raise ConfigError("status: name an experiment (or pass --workers)")
    if watch:
        _watch(experiment, format)
        return
    data = api.progress(experiment)
    if format is Out.json:
        print_json(data)
    else:
        from swarmq.report.progress import render_progress

        render_progress(data, out)


ALL_HELP = (
    "Rates over every judged outcome, not only the (replicate, issue) pairs every condition has reached."
)


def results(
    experiment: Annotated[str | None, typer.Argument(help="Experiment name (default: the newest).")] = None,
    by: Annotated[
        str, typer.Option(help="condition | replicate | task_type | agent | repo | model")
    ] = "condition",
    format: Annotated[Fmt, typer.Option("--format", help="table, csv or json")] = Fmt.table,
    all_outcomes: Annotated[bool, typer.Option("--all", help=ALL_HELP)] = False,
    divergence: Annotated[
        bool | None,
        typer.Option(
            "--divergence/--no-divergence",
            help="Compute D (default: up to 20,000 outcomes; it replays every replicate's buffers).",
        ),
    ] = None,
) -> None:
    """Results per group: success rates with 95% intervals, paired comparisons on matched pairs, S/F/D
    metrics."""
    from swarmq.report import render

    data = api.results(experiment, by, matched=not all_outcomes, divergence=divergence)
    if format is Fmt.json:
        print(render.render_json(data))
    elif format is Fmt.csv:
        sys.stdout.write(render.render_csv(data))
    else:
        render.print_table(data, out)


def export(
    experiment: str,
    format: Annotated[
        str, typer.Option("--format", help="jsonl | csv | parquet | humaneval | swebench")
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Output file (default: outcomes.<format>, e.g. outcomes.csv; a benchmark's format: "
            "outcomes.<format>.jsonl). Replaced atomically; /dev/null, /dev/stdout and pipes are written in "
            "place.",
        ),
    ] = None,
    condition: Annotated[str | None, typer.Option(help="Only this condition.")] = None,
    replicate: Annotated[int | None, typer.Option(help="Only this replicate.")] = None,
) -> None:
    """Write one row per outcome."""
    n, written = api.export(experiment, format, output, condition, replicate)
    note(f"wrote {n} rows to {written}")


def import_eval(
    experiment: str,
    report: Path,
    condition: Annotated[str, typer.Option(help="Condition the predictions came from.")],
    replicate: Annotated[int, typer.Option(help="Replicate the predictions came from.")] = 0,
    format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table,
) -> None:
    """Read a SWE-bench harness report and set `resolved` on the outcomes (reported beside the success
    rule)."""
    updated, resolved = api.import_eval(experiment, report, condition, replicate)
    if format is Out.json:
        print_json(
            {
                "experiment": experiment,
                "condition": condition,
                "replicate": replicate,
                "updated": updated,
                "resolved": resolved,
            }
        )
        return
    out.print(f"{experiment}/{condition}/r{replicate}: {updated} outcomes updated, {resolved} resolved")


def plot(
    experiment: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the PNG files.")] = Path("plots"),
) -> None:
    """PNG figures: success by condition, learning curves, agent × task-type routing heatmaps."""
    for p in api.plot(experiment, output):
        out.print(f"wrote {p}")


def replay(
    job_id: int,
    model: Annotated[Path | None, typer.Option(help="GGUF file (default: the experiment's).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replay even if the model's sha256 differs.")
    ] = False,
    format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table,
) -> None:
    """Re-run a job's recorded prompt with its recorded sampling and seed; report whether the text is
    identical.

    Exits 0 when it is, 7 when it differs (4: no such job or outcome, 5: model problem)."""
    report = api.replay(job_id, model, force)
    if format is Out.json:
        print_json(
            {**dataclasses.asdict(report), "identical": report.identical, "sha_matches": report.sha_matches}
        )
    else:
        out.print(report.summary(), markup=False, highlight=False)
    raise typer.Exit(0 if report.identical else REPLAY_DIFFERS)


def register(app: typer.Typer) -> None:
    for command in (enqueue, status, results, export, plot, replay):
        app.command()(command)
    app.command("import-eval")(import_eval)
