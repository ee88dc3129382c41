"""Progress of an experiment: per condition and replicate, how many jobs are done, running, failed, queued."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from swarmq.report.queries import SCORING_ERROR, SUCCESS
from swarmq.store.experiments import experiment_row

ETA_WINDOW_SECONDS = 300.0
"""The ETA extrapolates the throughput of the jobs finished in this many seconds."""


def progress(session: Session, name: str) -> dict[str, Any]:
    exp_id, _ = experiment_row(session, name)
    rows = session.execute(
        text(
            f"""
            SELECT j.condition, j.replicate, count(*) AS jobs,
                   count(*) FILTER (WHERE j.status = 'done') AS done,
                   count(*) FILTER (WHERE j.status = 'running') AS running,
                   count(*) FILTER (WHERE j.status = 'failed') AS failed,
                   count(*) FILTER (WHERE j.status IN ('queued', 'pending')) AS queued,
                   count(*) FILTER (WHERE {SUCCESS}) AS successes,
                   count(*) FILTER (WHERE {SCORING_ERROR}) AS scoring_errors,
                   extract(epoch FROM now() - min(j.started_at)) AS elapsed_seconds,
                   count(*) FILTER (WHERE j.finished_at > now() - make_interval(secs => :w)) AS recent_finished
            FROM jobs j LEFT JOIN outcomes o ON o.job_id = j.id
            WHERE j.experiment_id = :e GROUP BY j.condition, j.replicate ORDER BY j.condition, j.replicate
            """
        ),
        {"e": exp_id, "w": ETA_WINDOW_SECONDS},
    ).mappings()
    streams = [dict(r) for r in rows]
    for s in streams:
        s["elapsed_seconds"] = float(s["elapsed_seconds"]) if s["elapsed_seconds"] is not None else None
        s["eta_seconds"] = eta(int(s["jobs"]) - int(s["done"]) - int(s["failed"]), int(s.pop("recent_finished")),
                               s["elapsed_seconds"])  # fmt: skip
    total: dict[str, Any] = {
        k: sum(int(s[k]) for s in streams)
        for k in ("jobs", "done", "running", "failed", "queued", "successes", "scoring_errors")
    }
    total["eta_seconds"] = max((s["eta_seconds"] or 0.0 for s in streams), default=0.0)
    return {"experiment": name, "complete": total["done"] + total["failed"] == total["jobs"], "total": total,
            "streams": streams}  # fmt: skip


def eta(
    remaining: int, recent_finished: int, elapsed: float | None, window: float = ETA_WINDOW_SECONDS
) -> float | None:
    """Seconds left at the throughput of the last ``window`` seconds (None before anything finished)."""
    if remaining == 0:
        return 0.0
    if not elapsed or recent_finished == 0:
        return None
    return remaining / (recent_finished / min(window, elapsed))


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def progress_view(data: dict[str, Any]) -> Group:
    """A renderable: the header line and one bar per stream (used by `status` and live views)."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                   auto_refresh=False)  # fmt: skip
    for s in data["streams"]:
        finished = int(s["done"]) + int(s["failed"])
        detail = (f"{s['done']} done · {s['running']} running · {s['failed']} failed · {s['queued']} queued · "
                  f"{s['successes']} successes · {s['scoring_errors']} unscored · elapsed {_clock(s['elapsed_seconds'])} · ETA {_clock(s['eta_seconds'])}")  # fmt: skip
        bar.add_task(f"{s['condition']}/r{s['replicate']}", total=int(s["jobs"]), completed=finished, detail=detail)
    t = data["total"]
    head = (
        f"[bold]{data['experiment']}[/bold]: {t['done']}/{t['jobs']} done, {t['running']} running, {t['failed']} failed"
    )
    if t["scoring_errors"]:
        head += f", [bold red]{t['scoring_errors']} could not be scored[/bold red] (scorer errors, not model failures)"
    return Group(head, bar)


def render_progress(data: dict[str, Any], console: Console) -> None:
    console.print(progress_view(data))


def watch_progress(sessions: sessionmaker[Session], name: str, console: Console, interval: float = 1.0) -> None:
    """Refresh the progress view until every job is done or failed."""
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            with sessions() as session:
                data = progress(session, name)
            live.update(progress_view(data))
            if data["complete"]:
                return
            time.sleep(interval)
