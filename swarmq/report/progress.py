"""Progress of an experiment (per condition and replicate: jobs done, running, failed, queued, paused,
cancelled), watched live as a table or as JSON lines, and the list of experiments (`swarmq experiments`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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
                   count(*) FILTER (WHERE j.status = 'paused') AS paused,
                   count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE {SUCCESS}) AS successes,
                   count(*) FILTER (WHERE {SCORING_ERROR}) AS scoring_errors,
                   extract(epoch FROM now() - min(j.started_at)) AS elapsed_seconds,
                   count(*) FILTER (WHERE j.finished_at > now() - make_interval(secs => :w))
                       AS recent_finished
            FROM jobs j LEFT JOIN outcomes o ON o.job_id = j.id
            WHERE j.experiment_id = :e GROUP BY j.condition, j.replicate ORDER BY j.condition, j.replicate
            """
        ),
        {"e": exp_id, "w": ETA_WINDOW_SECONDS},
    ).mappings()
    streams = [dict(r) for r in rows]
    for s in streams:
        s["elapsed_seconds"] = float(s["elapsed_seconds"]) if s["elapsed_seconds"] is not None else None
        s["eta_seconds"] = eta(_left(s), int(s.pop("recent_finished")), s["elapsed_seconds"])
    total: dict[str, Any] = {
        k: sum(int(s[k]) for s in streams)
        for k in (
            "jobs",
            "done",
            "running",
            "failed",
            "queued",
            "paused",
            "cancelled",
            "successes",
            "scoring_errors",
        )
    }
    total["eta_seconds"] = max((s["eta_seconds"] or 0.0 for s in streams), default=0.0)
    state = session.execute(text("SELECT state FROM experiments WHERE id = :e"), {"e": exp_id}).scalar_one()
    # Complete: nothing is left to run. A paused experiment is not (its jobs run after `swarmq resume`).
    return {
        "experiment": name,
        "state": state,
        "complete": _left(total) == 0,
        "total": total,
        "streams": streams,
    }


def _left(counts: dict[str, Any]) -> int:
    """Jobs that will still run: neither done, failed nor cancelled."""
    return int(counts["jobs"]) - int(counts["done"]) - int(counts["failed"]) - int(counts["cancelled"])


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
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"), auto_refresh=False
    )
    for s in data["streams"]:
        finished = int(s["done"]) + int(s["failed"])
        held = "".join(f" · {s[k]} {k}" for k in ("paused", "cancelled") if s[k])
        detail = (
            f"{s['done']} done · {s['running']} running · {s['failed']} failed · "
            f"{s['queued']} queued{held} · {s['successes']} successes · {s['scoring_errors']} unscored · "
            f"elapsed {_clock(s['elapsed_seconds'])} · ETA {_clock(s['eta_seconds'])}"
        )
        bar.add_task(
            f"{s['condition']}/r{s['replicate']}", total=int(s["jobs"]), completed=finished, detail=detail
        )
    t = data["total"]
    head = (
        f"[bold]{data['experiment']}[/bold]: {t['done']}/{t['jobs']} done, {t['running']} running, "
        f"{t['failed']} failed"
    )
    if data["state"] != "active":
        head += f" · [bold yellow]{data['state']}[/bold yellow]" + (
            f" (`swarmq resume {data['experiment']}`)" if data["state"] == "paused" else ""
        )
    if t["scoring_errors"]:
        head += (
            f", [bold red]{t['scoring_errors']} could not be scored[/bold red]"
            " (scorer errors, not model failures)"
        )
    return Group(head, bar)


def render_progress(data: dict[str, Any], console: Console) -> None:
    console.print(progress_view(data))


def watch_progress(
    sessions: sessionmaker[Session], name: str, console: Console, interval: float = 1.0
) -> None:
    """Refresh the progress view until nothing is left to run (done, failed or cancelled)."""
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            with sessions() as session:
                data = progress(session, name)
            live.update(progress_view(data))
            if data["complete"]:
                return
            time.sleep(interval)


def watch_json(
    sessions: sessionmaker[Session], name: str, emit: Callable[[dict[str, Any]], None], interval: float = 1.0
) -> None:
    """`--watch --format json`: ``emit`` the `progress` document (the CLI prints it as one JSON line) each
    time its counts change, until nothing is left to run."""
    last = None
    while True:
        with sessions() as session:
            data = progress(session, name)
        changed = json.dumps(
            {
                **data,
                "total": {**data["total"], "eta_seconds": None},
                "streams": [{**s, "eta_seconds": None, "elapsed_seconds": None} for s in data["streams"]],
            },
            default=str,
        )
        if changed != last:
            emit(data)
            last = changed
        if data["complete"]:
            return
        time.sleep(interval)


EXPERIMENTS_SQL = """
SELECT e.name, e.benchmark, e.config, e.state, e.created_at, count(j.id) AS jobs,
       count(*) FILTER (WHERE j.status = 'done') AS done,
       count(*) FILTER (WHERE j.status = 'failed') AS failed,
       count(*) FILTER (WHERE j.status = 'running') AS running,
       count(*) FILTER (WHERE j.status IN ('pending', 'queued')) AS queued,
       count(*) FILTER (WHERE j.status = 'paused') AS paused,
       count(*) FILTER (WHERE j.status = 'cancelled') AS cancelled
FROM experiments e LEFT JOIN jobs j ON j.experiment_id = e.id
GROUP BY e.id ORDER BY e.created_at, e.id
"""


def experiments_json(session: Session) -> dict[str, Any]:
    """Every experiment, oldest first: name, benchmark, models, job counts, created, state
    (`swarmq experiments`)."""
    rows = []
    for r in session.execute(text(EXPERIMENTS_SQL)).mappings():
        row = {k: v for k, v in r.items() if k != "config"}
        row["models"] = model_names(r["config"])
        row["created_at"] = r["created_at"].isoformat(timespec="seconds")
        row["complete"] = _left(row) == 0
        rows.append(row)
    return {"experiments": rows}


def model_names(config: dict[str, Any]) -> list[str]:
    """The model(s) a stored experiment config names: `models:` (a list) or `model:`, by name else file
    name."""
    found = config.get("models") or [config.get("model") or {}]
    return [
        str(m.get("name") or str(m.get("path", "?")).rsplit("/", 1)[-1]) for m in found if isinstance(m, dict)
    ]


def render_experiments(data: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    if not data["experiments"]:
        console.print("no experiments yet (`swarmq enqueue CONFIG` creates one)")
        return
    t = Table(title="swarmq experiments")
    for col in (
        "name",
        "benchmark",
        "models",
        "jobs",
        "done",
        "failed",
        "running",
        "queued",
        "paused",
        "cancelled",
        "created",
        "state",
    ):
        t.add_column(col)
    for e in data["experiments"]:
        t.add_row(
            e["name"],
            e["benchmark"],
            ", ".join(e["models"]),
            *(str(e[k]) for k in ("jobs", "done", "failed", "running", "queued", "paused", "cancelled")),
            e["created_at"],
            e["state"] if e["state"] != "active" or not e["complete"] else "complete",
        )
    console.print(t)
