"""Tables that read at any terminal width: columns are kept by priority and never squeezed, so a name is never
cut (rich would shorten every column to ``ba…``); the columns that do not fit fold under their row as
``header value`` pairs. Which columns stay is a pure function of their widths (`keep`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Group
from rich.text import Text

GAP = 2
"""Spaces between two columns."""
INDENT = "    "
"""Before a row's folded columns."""


@dataclass(frozen=True)
class Column:
    header: str
    priority: int = 0
    """0: always in the row; otherwise the highest number folds under the row first when it is too wide."""
    right: bool = False
    """Right-aligned (numbers)."""
    fold: bool = True
    """Whether it is worth a ``header value`` pair under the row when it does not fit (a bar is not)."""


def keep(widths: Sequence[int], priorities: Sequence[int], width: int, gap: int = GAP) -> list[int]:
    """The indices of the columns to show in the row, in order: all of them when they fit in ``width``; else
    drop the highest priority number (the rightmost first among equals) until they fit or only priority 0
    is left."""
    shown = list(range(len(widths)))

    def total() -> int:
        return sum(widths[i] for i in shown) + gap * max(0, len(shown) - 1)

    while total() > width:
        droppable = [i for i in shown if priorities[i] > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (priorities[i], i)))
    return shown


def pack(parts: Sequence[str], width: int, indent: str = INDENT, sep: str = " · ") -> list[str]:
    """``parts`` joined by ``sep`` into lines of at most ``width`` cells after ``indent``; a part is never
    split (one longer than the line gets a line of its own)."""
    lines: list[str] = []
    line = ""
    for part in parts:
        joined = f"{line}{sep}{part}" if line else part
        if line and cell_len(indent + joined) > width:
            lines.append(indent + line)
            joined = part
        line = joined
    if line:
        lines.append(indent + line)
    return lines


def fitted(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, *, title: str | None = None
) -> Group:
    """A header and one line per row with the columns that fit ``width``; the others, where they say
    something (not ``-`` or empty), fold under the row."""
    widths = [max([cell_len(c.header), *(cell_len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    shown = keep(widths, [c.priority for c in columns], width)
    folded = [i for i in range(len(columns)) if i not in shown and columns[i].fold]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i in shown:
            pad = widths[i] - cell_len(cells[i])
            out.append(" " * pad + cells[i] if columns[i].right else cells[i] + " " * pad)
        return (" " * GAP).join(out).rstrip()

    lines: list[Text] = []
    if title:
        lines.append(Text(title, style="bold"))
    lines.append(Text(line([c.header for c in columns]), style="bold"))
    for r in rows:
        lines.append(Text(line(r)))
        extra = [f"{columns[i].header} {r[i]}" for i in folded if r[i] not in ("", "-")]
        lines.extend(Text(t, style="dim") for t in pack(extra, width))
    return Group(*lines)
