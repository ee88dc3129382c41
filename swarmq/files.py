"""Reading a user's text files (datasets, sample files, harness reports) with one line for every problem.

A user's file may be a folder, in another encoding, empty, or hold a line that is not what it should be: each
deserves a `DatasetError` that names the file (and the line), never a traceback or a misleading "not JSON".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from swarmq.errors import DatasetError

Rows = list[dict[str, Any]]


def read_text(path: Path, label: str) -> str:
    """A text file's content (UTF-8, a BOM allowed), or a `DatasetError` naming the file and the problem."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: a BOM, as Windows editors write, is not content
    except IsADirectoryError:
        raise DatasetError(f"{label}: is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{label}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"{label}: cannot read: {exc.strerror or exc}") from None
    if not text.strip():
        raise DatasetError(f"{label}: the file is empty")
    return text


def kind(value: Any) -> str:
    """A JSON value's type for a message: Python's name, but ``null`` for None (what the user wrote)."""
    return "null" if value is None else type(value).__name__


def json_lines(text: str, label: str, expected: str = "an object with fields") -> Rows:
    """One JSON object per non-blank line; a bad line is named by its 1-based number, as an editor shows it.

    Read here rather than by ``datasets``: its loader reports a bad line as "An error occurred while
    generating the dataset", and rows are small enough to parse directly."""
    rows: Rows = []
    # split("\n"), not splitlines(): U+2028 and friends are legal inside JSON strings, and not line ends.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{label}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{label}:{number}: expected {expected}, got {kind(row)}")
        rows.append(row)
    return rows


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """The hex sha256 of a file, read in chunks (model files are gigabytes): what outcomes record of a model
    and experiments of a local dataset file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
