"""`swarmq report EXP --html -o FILE`: the experiment page and every job page in one HTML file that opens
offline (styles and scripts inline, charts as inline SVG, nothing fetched)."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from swarmq.view import pages, render
from swarmq.view.filters import JobFilter
from swarmq.view.prompt import StreamHistory


def bundle(session: Session, name: str) -> str:
    """The one-file report of experiment ``name`` as HTML text."""
    page = pages.experiment_page(session, name, JobFilter(), every_job=True)
    histories: dict[tuple[str, int], StreamHistory] = {}
    jobs = [pages.job_page(session, j.job_id, histories) for j in page.jobs]
    written = datetime.now(UTC).isoformat(timespec="seconds")
    return render.bundle_html(page, jobs, written)


def write(session: Session, name: str, output: Path) -> int:
    """Write the report to ``output`` atomically (a reader never sees half a file); returns its size."""
    html = bundle(session, name)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(html.encode())
