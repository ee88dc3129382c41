"""Progress of an experiment (per condition and replicate: jobs done, running, failed, queued, paused,
cancelled), watched live as a table or as JSON lines, and the list of experiments (`swarmq experiments`)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from swarmq.report.columns import Column, fitted
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
    total["eta_seconds"] = total_eta([s["eta_seconds"] for s in streams])
    state = session.execute(text("SELECT state FROM experiments WHERE id = :e"), {"e": exp_id}).scalar_one()
    # Complete: nothing is left to run. A paused experiment is not (its jobs run after `swarmq resume`).
    return {
        "experiment": name,
        "state": state,
        "complete": _left(total) == 0,
        "total": total,
        "streams": streams,
    }


def total_eta(stream_etas: list[float | None]) -> float | None:
    """The experiment's ETA: its slowest stream's; None (unknown) while a stream with jobs left has none."""
    if any(e is None for e in stream_etas):
        return None
    return max((e for e in stream_etas if e is not None), default=0.0)


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


BAR_WIDTH = 16
LINE_SECONDS = 30.0
"""Piped output: a progress line whenever a job finishes, and at least this often while none does."""
HINT_SECONDS = 5.0
"""While no ETA can be given, how often the live workers are counted (for `NO_WORKER_HINT`)."""

NO_WORKER_HINT = (
    "ETA ? : no live worker serves it; start one (`swarmq worker --cpu`, `swarmq workers --gpus all`) "
    "and check with `swarmq workers list`"
)


def _columns() -> list[Column]:
    return [
        Column("stream"),
        Column("", priority=1, fold=False),
        Column("finished", right=True),
        Column("ETA", priority=2, right=True),
        Column("failed", priority=3, right=True),
        Column("running", priority=4, right=True),
        Column("queued", priority=5, right=True),
        Column("successes", priority=6, right=True),
        Column("unscored", priority=7, right=True),
        Column("elapsed", priority=8, right=True),
        Column("paused", priority=9, right=True),
        Column("cancelled", priority=9, right=True),
    ]


def bar(finished: int, jobs: int, width: int = BAR_WIDTH) -> str:
    """``█████░░░░░``: plain characters, so a pipe or a terminal without colour shows it too."""
    n = round(width * finished / jobs) if jobs else width
    return "█" * n + "░" * (width - n)


def headline(data: dict[str, Any]) -> str:
    """``demo: 40/60 done, 2 running, 0 failed · ETA 0:10:00``, plus the state when not active and the jobs
    that could not be scored (rich markup)."""
    t = data["total"]
    head = (
        f"[bold]{data['experiment']}[/bold]: {t['done']}/{t['jobs']} done, {t['running']} running, "
        f"{t['failed']} failed · ETA {_clock(t['eta_seconds'] if not data['complete'] else 0.0)}"
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
    return head


def progress_view(data: dict[str, Any], width: int = 80, hint: str | None = None) -> Group:
    """The header line and one row per stream (condition/replicate) with its bar, fitted to ``width``
    (`columns.fitted`: the least useful columns fold first; the stream name and its count stay)."""
    columns = _columns()
    rows: list[list[str]] = []
    for s in data["streams"]:
        finished = int(s["done"]) + int(s["failed"])
        rows.append(
            [
                f"{s['condition']}/r{s['replicate']}",
                bar(finished, int(s["jobs"])),
                f"{finished}/{s['jobs']}",
                _clock(s["eta_seconds"]),
                *(str(s[k]) for k in ("failed", "running", "queued", "successes", "scoring_errors")),
                _clock(s["elapsed_seconds"]),
                str(s["paused"]),
                str(s["cancelled"]),
            ]
        )
    # Columns that are zero everywhere say nothing: paused and cancelled only when some are.
    shown = [
        i
        for i, c in enumerate(columns)
        if c.header not in ("paused", "cancelled") or any(r[i] != "0" for r in rows)
    ]
    table = fitted([columns[i] for i in shown], [[r[i] for i in shown] for r in rows], width)
    parts: list[RenderableType] = [headline(data), table]
    if hint:
        parts.append(f"[yellow]{hint}[/yellow]")
    return Group(*parts)


def progress_line(data: dict[str, Any], now: float | None = None) -> str:
    """One plain line for a pipe or a log: ``12:03:04 demo 41/60 finished · 40 done · 2 running · 1 failed ·
    17 queued · ETA 0:10:00``."""
    t = data["total"]
    stamp = time.strftime("%H:%M:%S", time.localtime(now))
    eta_seconds = 0.0 if data["complete"] else t["eta_seconds"]
    line = (
        f"{stamp} {data['experiment']} {int(t['done']) + int(t['failed'])}/{t['jobs']} finished · "
        f"{t['done']} done · {t['running']} running · {t['failed']} failed · {t['queued']} queued · "
        f"ETA {_clock(eta_seconds)}"
    )
    if data["state"] != "active":
        line += f" · {data['state']}"
    return line


def render_progress(data: dict[str, Any], console: Console) -> None:
    console.print(progress_view(data, console.size.width))


def watch_progress(
    sessions: sessionmaker[Session],
    name: str,
    console: Console,
    interval: float = 1.0,
    live_workers: Callable[[], int] | None = None,
) -> None:
    """Refresh the progress view until nothing is left to run (done, failed or cancelled); `watch`."""

    def read() -> dict[str, Any]:
        with sessions() as session:
            return progress(session, name)

    watch(read, console, interval=interval, live_workers=live_workers)


def watch(
    read: Callable[[], dict[str, Any]],
    console: Console,
    *,
    interval: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    live_workers: Callable[[], int] | None = None,
    line_seconds: float = LINE_SECONDS,
) -> None:
    """Show ``read()``'s progress until it is complete or ``stop()`` says so. On a terminal: a live view at
    the terminal's width. Piped: a `progress_line` whenever the finished count changes, and every
    ``line_seconds`` while it does not, each ending with a newline. While no ETA can be given,
    ``live_workers`` (when given) is asked whether any worker is there; with none, a hint says how to start
    one."""
    hint_checked, hint = -math.inf, None

    def advise(data: dict[str, Any]) -> str | None:
        nonlocal hint_checked, hint
        if live_workers is None or data["complete"] or data["total"]["eta_seconds"] is not None:
            return None
        if time.monotonic() - hint_checked >= HINT_SECONDS:
            hint_checked, hint = time.monotonic(), (NO_WORKER_HINT if live_workers() == 0 else None)
        return hint

    if not console.is_terminal:
        _watch_lines(read, console, interval, stop, advise, line_seconds)
        return
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            data = read()
            live.update(progress_view(data, console.size.width, advise(data)))
            if data["complete"] or stop():
                return
            time.sleep(interval)


def _watch_lines(
    read: Callable[[], dict[str, Any]],
    console: Console,
    interval: float,
    stop: Callable[[], bool],
    advise: Callable[[dict[str, Any]], str | None],
    line_seconds: float,
) -> None:
    last_line, last_finished, last_hint = -math.inf, -1, None
    while True:
        data = read()
        finished = int(data["total"]["done"]) + int(data["total"]["failed"])
        now = time.monotonic()
        if finished != last_finished or now - last_line >= line_seconds or data["complete"]:
            console.print(progress_line(data), markup=False, highlight=False, soft_wrap=True)
            last_line, last_finished = now, finished
        if (hint := advise(data)) is not None and hint != last_hint:
            console.print(hint, markup=False, highlight=False, soft_wrap=True)
        last_hint = hint
        if data["complete"] or stop():
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


EXPERIMENT_COLUMNS = (
    Column("name"),
    Column("state"),
    Column("jobs", priority=1, right=True),
    Column("done", priority=1, right=True),
    Column("failed", priority=2, right=True),
    Column("running", priority=3, right=True),
    Column("queued", priority=4, right=True),
    Column("models", priority=5),
    Column("benchmark", priority=6),
    Column("paused", priority=7, right=True),
    Column("cancelled", priority=7, right=True),
    Column("created", priority=8),
)
"""`swarmq experiments`, most useful first (`columns.fitted`)."""


def render_experiments(data: dict[str, Any], console: Console) -> None:
    if not data["experiments"]:
        console.print("no experiments yet (`swarmq enqueue CONFIG` creates one)")
        return
    rows = [
        [
            e["name"],
            e["state"] if e["state"] != "active" or not e["complete"] else "complete",
            *(str(e[k]) for k in ("jobs", "done", "failed", "running", "queued")),
            ", ".join(e["models"]),
            e["benchmark"],
            str(e["paused"]),
            str(e["cancelled"]),
            e["created_at"],
        ]
        for e in data["experiments"]
    ]
    console.print(fitted(EXPERIMENT_COLUMNS, rows, console.size.width, title="swarmq experiments"))
