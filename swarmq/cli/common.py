"""What every command group shares: the consoles, the output formats, and JSON printing."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Any

from rich.console import Console

# Pipes and files get a wide table instead of rich's 80-column default, unless COLUMNS names a width.
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else 160)
err = Console(stderr=True)


class Fmt(StrEnum):
    """`results`: the only command with a CSV form (one row per group)."""

    table = "table"
    csv = "csv"
    json = "json"


class Out(StrEnum):
    """Every other command: a table (or a line) for people, JSON for programs. Each command's ``--format``
    lists only what it supports, so `--format csv` there is refused (exit 2), never silently a table."""

    table = "table"
    json = "json"


def check_arguments(argv: list[str]) -> None:
    """Refuse an argument that is not UTF-8 text (Python hands bytes that are not as lone surrogates): as an
    experiment name it would reach Postgres, as a path a stored configuration, and fail there with a
    traceback. One check for every command, before any runs."""
    from swarmq.errors import ConfigError
    from swarmq.files import text_problem

    for number, arg in enumerate(argv, 1):
        if text_problem(arg) is not None:
            raise ConfigError(f"argument {number} ({arg!r}) is not UTF-8 text")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_json_line(data: Any) -> None:
    """One compact object per line (JSON lines), flushed: what `--watch --format json` streams."""
    print(json.dumps(data, default=str), flush=True)


def note(message: str) -> None:
    """Progress notes go to stderr, dimmed, so stdout stays the command's result."""
    err.print(f"[dim]{message}[/dim]")
