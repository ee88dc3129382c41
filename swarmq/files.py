"""Reading a user's files (datasets, sample files, harness reports, experiment files) with one line for every
problem, and writing output files atomically.

A user's file may be a folder, a device or a FIFO, in another encoding, empty, nested past what a parser can
follow, hold text Postgres cannot store, or a line that is not what it should be: each deserves a
`DatasetError` that names the file (and the line), never a traceback, a hang or a misleading "not JSON".
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarmq.errors import DatasetError, OutputError

Rows = list[dict[str, Any]]


def _kind_of(mode: int) -> str:
    """What a file that is not a regular file is, for a message."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def user_path(text: str, label: str) -> Path:
    """A path a user wrote, ``~`` expanded; ``~nosuchuser/...`` is one line, not a RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:
        raise DatasetError(f"{label}: cannot expand {text!r}: {exc}") from None


def check_regular(path: Path, label: str) -> None:
    """Refuse anything but a regular file (symlinks followed) before reading it: ``/dev/zero`` never ends and
    a FIFO blocks until someone writes, so reading (or hashing) either would hang the command."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DatasetError(f"{label}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{label}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise DatasetError(f"{label}: is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise DatasetError(f"{label}: is {_kind_of(mode)}, not a regular file")


def read_text(path: Path, label: str) -> str:
    """A text file's content (UTF-8, a BOM allowed), or a `DatasetError` naming the file and the problem."""
    check_regular(path, label)
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


MAX_DEPTH = 100
"""Deepest nesting of lists and objects accepted in a user's JSON or YAML: far past any dataset, report or
experiment file, and far below Python's recursion limit (parsers, validators and writers all recurse)."""


def depth_error(value: Any, max_values: int | None = None) -> str | None:
    """Why a parsed document is nested too deeply (past `MAX_DEPTH`) or holds more than ``max_values`` values
    (counted as the walk meets them: YAML aliases let a few lines stand for billions, "billion laughs",
    which every later walk over the document would visit), or None. Iterative: it must not itself recurse."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if max_values is not None and seen > max_values:
            return f"holds more than {max_values:,} values (aliases that repeat each other?)"
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def loads(text: str) -> Any:
    """`json.loads`, with nesting past `MAX_DEPTH` (which would end in a RecursionError, or in one later, in
    whatever recurses over the value) reported as a `json.JSONDecodeError`, so each caller's one line for
    "not JSON" covers it."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError(f"nested more than {MAX_DEPTH} levels deep", text, 0) from None
    if (problem := depth_error(value)) is not None:
        raise json.JSONDecodeError(problem, text, 0)
    return value


def bad_text(value: Any) -> tuple[tuple[Any, ...], str] | None:
    """The first string (or key) in a parsed document that Postgres cannot store or UTF-8 cannot encode:
    (its location as keys and indices, the problem), or None. A NUL character is refused by Postgres text and
    JSONB; a lone surrogate (JSON's ``\\ud800``, YAML's ``"\\ud800"``) is not Unicode text at all. Refused
    where a user's document is read, with the field named, instead of failing later in a driver or a
    subprocess."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and (problem := text_problem(key)):
                    return (*loc, key), f"the key {problem}"
                stack.append((child, (*loc, key)))
        elif isinstance(item, list | tuple):
            stack.extend((child, (*loc, i)) for i, child in enumerate(item))
        elif isinstance(item, str) and (problem := text_problem(item)):
            return loc, problem
    return None


def text_problem(text: str) -> str | None:
    """Why one string cannot be stored, or None (`bad_text`)."""
    if "\x00" in text:
        return f"holds a NUL character (at offset {text.index(chr(0))}), which Postgres cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds a lone surrogate (U+{ord(text[exc.start]):04X} at offset {exc.start}), which is not "
            "Unicode text"
        )
    return None


def where(loc: tuple[Any, ...]) -> str:
    """A location from `bad_text` as a user reads it: ``conditions.a.stop[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


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
            row = loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{label}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{label}:{number}: expected {expected}, got {kind(row)}")
        if (bad := bad_text(row)) is not None:
            raise DatasetError(f"{label}:{number}: {where(bad[0])}: {bad[1]}")
        rows.append(row)
    return rows


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """The hex sha256 of a file, read in chunks (model files are gigabytes): what outcomes record of a model
    and experiments of a local dataset file. Regular files only (`check_regular`): a device never ends."""
    check_regular(path, str(path))
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, write: Callable[[Path], None], label: str) -> None:
    """Write an output file all at once or not at all: ``write`` fills a temporary file in the target's
    folder, which then replaces the target by rename, so a failure or a Ctrl-C leaves nothing
    half-written. A new file gets the mode the umask gives (0666 minus the umask); a replaced file keeps
    its mode. A symlink is followed, and its target replaced (the link stays). A character device or a
    FIFO (``/dev/null``, ``/dev/stdout``, a pipe) is written in place, never replaced by a file; a block
    device, a directory or a socket is refused. Every refusal or OS error is one `OutputError` line
    naming ``label``."""
    try:
        _write_atomic(path, write, label)
    except OSError as exc:
        raise OutputError(f"{label}: cannot write {path}: {exc.strerror or exc}") from None


def _write_atomic(path: Path, write: Callable[[Path], None], label: str) -> None:
    try:
        mode: int | None = path.stat().st_mode  # follows a symlink to what it names
    except (FileNotFoundError, NotADirectoryError):  # the parent's problem, named below
        mode = None
        if path.is_symlink():
            raise OutputError(
                f"{label}: {path} is a symlink to a missing file ({os.readlink(path)})"
            ) from None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        _write_through(path, write)
        return
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(f"{label}: {path} is {_kind_of(mode)}; give a file path")
    target = Path(os.path.realpath(path))  # a symlink's target is replaced, the link kept
    if not target.parent.is_dir():
        what = "does not exist" if not target.parent.exists() else "is not a folder"
        raise OutputError(f"{label}: {target.parent} {what}")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_through(path: Path, write: Callable[[Path], None]) -> None:
    """A device or a FIFO: write the output to a private temporary file, then copy it into the path as it
    is (writers such as parquet's need a seekable file; the target need not be one)."""
    with tempfile.TemporaryDirectory(prefix="swarmq-out-") as folder:
        tmp = Path(folder) / "out"
        write(tmp)
        with tmp.open("rb") as src, path.open("wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
