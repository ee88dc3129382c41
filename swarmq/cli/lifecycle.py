"""Commands on an experiment's lifecycle: list them, pause, resume, cancel, retry failed jobs, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from swarmq import api
from swarmq.cli.common import Out, out, print_json
from swarmq.errors import ConfigError

if TYPE_CHECKING:
    from swarmq.queue.lifecycle import Change

Format = Annotated[Out, typer.Option("--format", help="table or json")]


def experiments(format: Format = Out.table) -> None:
    """List experiments: benchmark, models, jobs done / failed / queued, created, state."""
    data = api.experiments()
    if format is Out.json:
        print_json(data)
        return
    from swarmq.report.progress import render_experiments

    render_experiments(data, out)


def _report(change: Change, format: Out, what: str) -> None:
    if format is Out.json:
        print_json(change.as_dict())
        return
    line = f"{change.experiment}: {what}"
    if change.running and change.action != "delete":
        line += f"; {change.running} running job(s) will finish"
    out.print(line, markup=False, highlight=False)


def pause(experiment: str, format: Format = Out.table) -> None:
    """Hold an experiment until `swarmq resume`; running jobs finish.

    Its queued jobs wait (paused) and no new ones are released. Workers drop the deliveries they get
    meanwhile; nothing is lost."""
    c = api.pause(experiment)
    _report(c, format, f"paused ({c.jobs} queued job(s) held)")


def resume(experiment: str, format: Format = Out.table) -> None:
    """Undo `swarmq pause`: held jobs are queued and published again."""
    c = api.resume(experiment)
    _report(c, format, f"resumed ({c.jobs} held job(s) queued again, {c.published} published)")


def cancel(experiment: str, format: Format = Out.table) -> None:
    """Cancel an experiment for good; running jobs finish and keep their outcomes.

    Every job that has not started is cancelled and never runs."""
    c = api.cancel(experiment)
    _report(c, format, f"cancelled ({c.jobs} job(s) will not run)")


def retry(
    experiment: str,
    failed: Annotated[
        bool, typer.Option("--failed", help="Retry the failed jobs (required: says what to retry).")
    ] = False,
    format: Format = Out.table,
) -> None:
    """Run an experiment's failed jobs again (those that never reached an agent).

    Those are jobs whose worker died or hit an unexpected error. A job whose generation or scoring failed
    (prompt over n_ctx, timeout) is a result and is kept."""
    if not failed:
        raise ConfigError("retry: say what to retry: --failed")
    c = api.retry_failed(experiment)
    kept = f"; {c.kept} failed job(s) with a model outcome kept" if c.kept else ""
    _report(c, format, f"{c.jobs} failed job(s) pending again, {c.published} published{kept}")


def delete(
    experiment: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even while jobs run (their results are dropped).")
    ] = False,
    format: Format = Out.table,
) -> None:
    """Delete an experiment: its rows, swarm state and queued messages (refused while jobs run).

    Removes its issues, jobs and outcomes from Postgres, its swarm state from Redis and its messages from the
    broker. Refused while jobs run, unless --force."""
    if not yes:
        raise ConfigError(
            f"delete: this removes {experiment!r} and all its outcomes for good; pass --yes to confirm"
        )
    c = api.delete(experiment, force=force)
    orphaned = f"; {c.running} running job(s) will find it gone" if c.running else ""
    _report(
        c, format, f"deleted ({c.jobs} job(s) and their outcomes, swarm state, queued messages){orphaned}"
    )


def register(app: typer.Typer) -> None:
    for command in (experiments, pause, resume, cancel, retry, delete):
        app.command()(command)
