"""A stand-in for Hugging Face ``datasets`` on bare GPU boxes (bench/gpu.sh only, never installed elsewhere).

The real package needs pyarrow and pandas (~60 MB of wheels), more than such a box can be given. swarmq uses
it there only to read the bundled HumanEval file (``load_dataset("json", data_files=PATH, split="train")``
then ``to_list()``), which is one JSON object per line, gzip-compressed: that is all this module does, and
anything else raises.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


class _Rows:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def to_list(self) -> list[dict[str, Any]]:
        return list(self._rows)


def disable_progress_bar() -> None:
    return None


def load_dataset(kind: str, *, data_files: str, split: str = "train", **kw: Any) -> _Rows:
    if kind != "json" or split != "train" or kw or not isinstance(data_files, str):
        raise NotImplementedError("bench/gpu_shim/datasets reads one local JSON-lines file only")
    path = Path(data_files)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return _Rows([json.loads(line) for line in fh if line.strip()])
