"""Progress of an experiment: per condition and replicate, how many jobs are done, running, failed, queued."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.progress import BarColumn, Progress, TextColumn
from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.results import experiment_row


def progress(session: Session, name: str) -> dict[str, Any]:
    exp_id, _ = experiment_row(session, name)
    rows = session.execute(
        text(
            """
            SELECT j.condition, j.replicate, count(*) AS jobs,
                   count(*) FILTER (WHERE j.status = 'done') AS done,
                   count(*) FILTER (WHERE j.status = 'running') AS running,
                   count(*) FILTER (WHERE j.status = 'failed') AS failed,
                   count(*) FILTER (WHERE j.status IN ('queued', 'pending')) AS queued,
                   count(*) FILTER (WHERE o.success) AS successes,
                   min(j.started_at) AS first_start, max(j.finished_at) AS last_finish
            FROM jobs j LEFT JOIN outcomes o ON o.job_id = j.id
            WHERE j.experiment_id = :e GROUP BY j.condition, j.replicate ORDER BY j.condition, j.replicate
            """
        ),
        {"e": exp_id},
    ).mappings()
    streams = [dict(r) for r in rows]
    total = {k: sum(int(s[k]) for s in streams) for k in ("jobs", "done", "running", "failed", "queued", "successes")}
    return {"experiment": name, "complete": total["done"] + total["failed"] == total["jobs"], "total": total,
            "streams": streams}  # fmt: skip


def progress_view(data: dict[str, Any]) -> Group:
    """A renderable: the header line and one bar per stream (used by `status` and live views)."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                   auto_refresh=False)  # fmt: skip
    for s in data["streams"]:
        finished = int(s["done"]) + int(s["failed"])
        detail = (f"{s['done']} done · {s['running']} running · {s['failed']} failed · {s['queued']} queued · "
                  f"{s['successes']} successes")  # fmt: skip
        bar.add_task(f"{s['condition']}/r{s['replicate']}", total=int(s["jobs"]), completed=finished, detail=detail)
    t = data["total"]
    head = (
        f"[bold]{data['experiment']}[/bold]: {t['done']}/{t['jobs']} done, {t['running']} running, {t['failed']} failed"
    )
    return Group(head, bar)


def render_progress(data: dict[str, Any], console: Console) -> None:
    console.print(progress_view(data))
