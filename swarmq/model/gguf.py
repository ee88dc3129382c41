"""Reading a GGUF file's header without llama.cpp: the metadata a worker checks before it loads a model.

Loading a model with a context larger than it was trained on would first allocate the KV cache for it; the
header says the trained context in microseconds. Only the key/value section is read, up to the keys asked for.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from swarmq.errors import ModelError

MAGIC = b"GGUF"
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


def metadata(path: Path, wanted: set[str] | None = None) -> dict[str, Any]:
    """Key → value of the header (arrays are skipped, as None); stops once every ``wanted`` key was seen."""
    found: dict[str, Any] = {}
    with path.open("rb") as fh:
        try:
            for key, value in _entries(fh):
                found[key] = value
                if wanted is not None and wanted <= found.keys():
                    break
        except (struct.error, UnicodeDecodeError, ValueError, OverflowError) as exc:
            # A truncated download or a file that only starts like a GGUF: one line naming it, no traceback.
            raise ModelError(f"model file {path}: unreadable GGUF header ({exc})") from None
    return found


def trained_context(path: Path) -> int | None:
    """The context length the model was trained on (``<architecture>.context_length``), if the header says."""
    arch = metadata(path, {"general.architecture"}).get("general.architecture")
    if not isinstance(arch, str):
        return None
    value = metadata(path, {f"{arch}.context_length"}).get(f"{arch}.context_length")
    return int(value) if isinstance(value, int) else None


def _entries(fh: IO[bytes]) -> Iterator[tuple[str, Any]]:
    if fh.read(4) != MAGIC:
        raise ValueError("not a GGUF file")
    version, _tensors, count = struct.unpack("<IQQ", fh.read(20))
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    for _ in range(count):
        key = _string(fh)
        (kind,) = struct.unpack("<I", fh.read(4))
        yield key, _value(fh, kind)


def _string(fh: IO[bytes]) -> str:
    (n,) = struct.unpack("<Q", fh.read(8))
    return fh.read(n).decode("utf-8", errors="replace")


def _value(fh: IO[bytes], kind: int) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(fh)
    if kind == _ARRAY:
        item, n = struct.unpack("<IQ", fh.read(12))
        if item in _SCALARS:
            fh.seek(n * struct.calcsize(_SCALARS[item]), 1)
        else:
            for _ in range(n):
                _value(fh, item)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")
