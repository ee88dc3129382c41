"""The `swarmq` command: a thin layer over the Python API (`swarmq.api`). Every failure is one line and a
non-zero exit (`errors.py` says which code means what)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import click
import typer

from swarmq.cli import admin, doctor, experiments, lifecycle, plan, view, workers
from swarmq.cli.common import check_arguments, err
from swarmq.errors import SwarmqError

VERBOSE = ("-v", "--verbose")

app = typer.Typer(
    help="swarmq: a distributed job queue for multi-GPU LLM experiment runs.\n\n"
    "Start workers per GPU, enqueue an experiment, query results. Connections come from SWARMQ_DATABASE_URL "
    "and SWARMQ_REDIS_URL; when unset, embedded PostgreSQL and Redis servers are started under SWARMQ_HOME.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for group in (experiments, lifecycle, workers, admin, plan, view, doctor):
    group.register(app)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"swarmq {version('swarmq')}")
        raise typer.Exit(0)


@app.callback()
def root(
    _version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
    _verbose: Annotated[
        bool, typer.Option(*VERBOSE, help="Log progress (INFO) to stderr; also accepted after the command.")
    ] = False,
) -> None:
    """swarmq: a distributed job queue for multi-GPU LLM experiment runs."""


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
    # -v is read here, wherever it stands on the line (`swarmq worker --cpu -v` as well as
    # `swarmq -v worker`), because logging is configured before any command runs; `root` declares it for
    # --help.
    verbose = any(a in VERBOSE for a in sys.argv[1:])
    if verbose:  # llama.cpp's own log lines too, in this process and the workers it starts
        os.environ["SWARMQ_LLAMA_VERBOSE"] = "1"
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = [a for a in sys.argv[1:] if a not in VERBOSE]
    try:
        check_arguments(argv)
        rc = app(args=argv, prog_name="swarmq", standalone_mode=False)
    except SwarmqError as exc:
        # Plain print: rich would wrap a long message over several lines; an error is one line.
        print(f"swarmq: error: {str(exc).replace(chr(10), ' ')}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except _click_errors() as exc:
        text = exc.format_message()  # type: ignore[attr-defined]
        message = text.replace(chr(10), " ").replace("Value error, ", "")
        print(f"swarmq: error: {message} (see `swarmq --help`)", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except (typer.Abort, click.exceptions.Abort):
        err.print("aborted")
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
