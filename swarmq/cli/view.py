"""Commands that look at an experiment: `view` (a local web viewer), `report --html` (the same pages as one
file) and `show` (a job in the terminal)."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Annotated

import typer

from swarmq import api
from swarmq.cli.common import Out, note, out, print_json
from swarmq.errors import ConfigError


def view(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (default: this machine only: the pages show every prompt)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
) -> None:
    """Serve a read-only web viewer of the experiments in Postgres (live while they run).

    Experiments, results, learning curves, routing, the outcome matrix and every job's prompt, completion and
    verdict; pages of a running experiment refresh themselves. Ctrl-C stops it."""
    import uvicorn

    from swarmq.view.web import make_app

    _can_listen(host, port)
    app = make_app(api.connect().sessions)
    note(f"swarmq view: http://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _can_listen(host: str, port: int) -> None:
    """Refuse at once, on one line, an address this machine cannot listen on (a port in use, a foreign
    address), before connecting to anything."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"view: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def report(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    html: Annotated[bool, typer.Option("--html", help="Write the viewer's pages as one HTML file.")] = False,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file.")] = Path("report.html"),
) -> None:
    """Write an experiment's viewer pages as one HTML file that opens offline (--html).

    Results, charts, the outcome matrix and every job's page, with styles and scripts inline."""
    if not html:
        raise ConfigError("report: only --html is supported (for tables use `swarmq results`)")
    from swarmq.view.bundle import write

    with api.connect().sessions() as session:
        size = write(session, experiment, output)
    out.print(f"wrote {output} ({size / 1e6:.1f} MB)", markup=False, highlight=False)


def show(
    job_id: Annotated[int, typer.Argument(help="Job id (from `swarmq view`, export or psql).")],
    format: Annotated[Out, typer.Option("--format", help="table or json")] = Out.table,
) -> None:
    """Print one job: prompt with its examples marked, completion, verdict, routing, timings.

    Also the model and sampling, errors, the scorer's detail, the agent's buffer and the replay command."""
    from rich.console import Console

    from swarmq.view.pages import job_page
    from swarmq.view.terminal import show as print_job

    with api.connect().sessions() as session:
        page = job_page(session, job_id)
    if format is Out.json:
        print_json(dataclasses.asdict(page))
    else:
        print_job(page, Console(soft_wrap=False))


def register(app: typer.Typer) -> None:
    for command in (view, report, show):
        app.command()(command)
