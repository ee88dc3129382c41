"""Output that reads at 80 columns: `status` and `workers list` keep every name whole and every line within the
terminal's width, columns that do not fit fold under their row, and piped progress is one line per finished
job, each ending with a newline."""

from __future__ import annotations

import io
import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from swarmq.report.columns import Column, fitted, keep, pack
from swarmq.report.progress import NO_WORKER_HINT, progress_view, render_experiments, total_eta, watch
from swarmq.report.workers import render_workers
from tests.conftest import swarmq
from tests.helpers import write_config
from tests.test_reliability import start_worker, wait_for

WIDTHS = (80, 120)
CONDITIONS = ("baseline", "swarm-context-accumulation", "random-router-with-long-name")
WORKER = "swarmq-gpu0-1234567@node-a17.cluster.example.org"
MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"


def rendered(renderable: Any, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def assert_fits(lines: list[str], width: int, names: list[str]) -> None:
    assert all(len(line) <= width for line in lines), [line for line in lines if len(line) > width]
    text = "\n".join(lines)
    for name in names:
        assert any(name in line for line in lines), f"{name!r} is not whole at {width} columns:\n{text}"


def progress_data(eta: float | None = 1234.0) -> dict[str, Any]:
    streams = [
        {
            "condition": c,
            "replicate": r,
            "jobs": 20,
            "done": 7,
            "running": 1,
            "failed": 1,
            "queued": 11,
            "paused": 0,
            "cancelled": 0,
            "successes": 3,
            "scoring_errors": 0,
            "elapsed_seconds": 300.0,
            "eta_seconds": eta,
        }
        for c in CONDITIONS
        for r in range(2)
    ]
    total = {k: sum(s[k] for s in streams) for k in ("jobs", "done", "running", "failed", "queued")}
    total |= {"paused": 0, "cancelled": 0, "successes": 18, "scoring_errors": 0, "eta_seconds": eta}
    return {"experiment": "demo", "state": "active", "complete": False, "total": total, "streams": streams}


def test_keep_drops_the_least_useful_columns_first() -> None:
    assert keep([10, 10, 10], [0, 1, 2], 34) == [0, 1, 2]
    assert keep([10, 10, 10], [0, 2, 1], 22) == [0, 2]
    assert keep([10, 10, 10], [0, 1, 1], 10) == [0]
    assert keep([50, 50], [0, 0], 80) == [0, 1]  # names are never dropped; they overflow instead


def test_pack_never_splits_a_part() -> None:
    assert pack(["a 1", "b 2", "c 3"], 15, indent="  ") == ["  a 1 · b 2", "  c 3"]
    assert pack([], 80) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_status_keeps_names_bar_and_eta_at(width: int) -> None:
    lines = rendered(progress_view(progress_data(), width), width)
    assert_fits(lines, width, [f"{c}/r{r}" for c in CONDITIONS for r in range(2)])
    rows = [line for line in lines if "/r" in line and not line.startswith(" ")]
    assert len(rows) == 6 and all("█" in row and "0:20:34" in row for row in rows), lines
    assert "ETA 0:20:34" in lines[0]
    # What did not fit is folded under its row, not lost.
    assert (
        sum("queued 11" in line or (line.split()[:1] == ["stream"] and "queued" in line) for line in lines)
        >= 1
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_workers_list_keeps_names_whole_at(width: int, capsys: pytest.CaptureFixture[str]) -> None:
    worker = {
        "name": WORKER,
        "host": "node-a17.cluster.example.org",
        "gpu": 0,
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "vram_used_mb": 12345.0,
        "model": MODEL,
        "current_jobs": [1234, 1235, 1236],
        "slots": 4,
        "busy_slots": 3,
        "job_seconds": 12.3,
        "jobs_done": 456,
        "tokens_per_second": 85.3,
        "last_heartbeat_seconds_ago": 2.0,
        "state": "live",
    }
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    render_workers({"workers": [worker, {**worker, "name": "w2@h"}]}, console)
    lines = console.export_text().splitlines()
    assert_fits(lines, width, [WORKER, MODEL, "node-a17.cluster.example.org", "NVIDIA H100 80GB HBM3"])
    assert any("VRAM MB 12345" in line or "12345" in line for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_experiments_keep_names_whole_at(width: int) -> None:
    experiment = {
        "name": "exp3-swebench-lite-context-accumulation-ablation",
        "benchmark": "swebench",
        "models": [MODEL],
        "jobs": 450,
        "done": 120,
        "failed": 3,
        "running": 4,
        "queued": 323,
        "paused": 0,
        "cancelled": 0,
        "created_at": "2026-12-07T22:52:00+00:00",
        "state": "active",
        "complete": False,
    }
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    render_experiments({"experiments": [experiment]}, console)
    lines = console.export_text().splitlines()
    assert_fits(lines, width, [experiment["name"], MODEL, "2026-12-07T22:52:00+00:00"])


def test_a_name_wider_than_the_terminal_overflows_whole() -> None:
    long = "x" * 90
    lines = rendered(fitted([Column("name"), Column("n", priority=1)], [[long, "1"]], 80), 200)
    assert any(long in line for line in lines) and any("n 1" in line for line in lines)


def test_the_experiment_eta_is_unknown_while_a_stream_has_none() -> None:
    assert total_eta([10.0, None]) is None and total_eta([10.0, 30.0]) == 30.0 and total_eta([]) == 0.0


def test_piped_progress_is_a_line_per_finished_job_each_ending_with_a_newline() -> None:
    data = progress_data(eta=None)
    steps = []
    for finished in (0, 0, 1, 2, 2):
        d = {**data, "total": {**data["total"], "done": finished, "failed": 0}}
        steps.append(d)
    steps.append({**steps[-1], "complete": True, "total": {**steps[-1]["total"], "done": 3}})
    reads = iter(steps)
    buffer = io.StringIO()
    console = Console(file=buffer, width=80)  # not a terminal: plain lines
    watch(lambda: next(reads), console, interval=0, live_workers=lambda: 0)
    text = buffer.getvalue()
    assert text.endswith("\n")
    lines = text.splitlines()
    progress = [line for line in lines if " finished · " in line]
    assert [line.split()[2] for line in progress] == ["0/120", "1/120", "2/120", "3/120"], lines
    assert progress[-1].endswith("ETA 0:00:00")
    assert lines.count(NO_WORKER_HINT) == 1  # said once, not on every line


@pytest.mark.services
def test_status_and_workers_list_from_the_cli_at_80_and_120_columns(
    tmp_path: Path, services_env: dict[str, str]
) -> None:
    """The real commands, with COLUMNS as a terminal sets it: a live worker with a long name and an
    experiment with long condition names."""
    conditions = {c: {} for c in CONDITIONS}
    config = write_config(tmp_path, name="narrow", limit=1, conditions=conditions)
    assert swarmq("enqueue", str(config), env=services_env).returncode == 0
    name = "a-worker-with-a-rather-long-name"
    proc = start_worker(services_env, burst=False, name=name)
    node = f"{name}@{socket.gethostname()}"
    try:
        wait_for(
            lambda: node in swarmq("workers", "list", "--format", "json", env=services_env).stdout,
            60,
            "a heartbeat",
        )
        listed_json = json.loads(swarmq("workers", "list", "--format", "json", env=services_env).stdout)
        (model,) = {w["model"] for w in listed_json["workers"]}
        for width in WIDTHS:
            env = {**services_env, "COLUMNS": str(width)}
            status = swarmq("status", "narrow", env=env)
            assert status.returncode == 0, status.stderr
            assert_fits(status.stdout.splitlines(), width, [f"{c}/r0" for c in CONDITIONS])
            listed = swarmq("workers", "list", env=env)
            assert listed.returncode == 0, listed.stderr
            assert_fits(listed.stdout.splitlines(), width, [node, model])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
