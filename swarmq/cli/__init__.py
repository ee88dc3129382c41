"""The `swarmq` command: a thin Typer layer over the public API in `swarmq.api`."""

from swarmq.cli.app import main

__all__ = ["main"]
