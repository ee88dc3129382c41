"""Fair partial runs: every stream of an experiment, relaxed ones included, stays within ``max_spread``
positions of the slowest, so a run stopped at any moment compares conditions on nearly the same issues.
Real Postgres, Redis and worker processes; stand-in generator."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, swarmq
from tests.helpers import write_config
from tests.test_reliability import assert_exactly_once

pytestmark = pytest.mark.services
MIXED = {"baseline": {}, "control": {"agents": 2, "router": "round_robin", "accumulate": True}}
"""baseline is relaxed and unlimited (it used to be queued all at once); control is strict."""


def _rows(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        return conn.execute(sql, args).fetchall()


def _queued(database_url: str) -> set[tuple[str, int, int]]:
    rows = _rows(database_url, "SELECT condition, replicate, position FROM jobs WHERE status = 'queued'")
    return {(c, r, p) for c, r, p in rows}


def test_release_holds_relaxed_streams_inside_the_window(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    cfg = write_config(tmp_path, name="win", limit=10, replicates=2, conditions=MIXED)
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    window = 4  # ExperimentConfig.max_spread's default
    expected = {("baseline", r, p) for r in (0, 1) for p in range(window)} | {
        ("control", r, 0) for r in (0, 1)
    }
    assert _queued(database_url) == expected

    # Every baseline job in the window finishes; control's first jobs are still open: baseline waits for them.
    from swarmq.experiment.config import ExperimentConfig
    from swarmq.queue import jobs
    from swarmq.settings import get_settings
    from swarmq.store.services import connect

    svc = connect(get_settings())
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'done' WHERE condition = 'baseline' AND status = 'queued'")
        (raw,) = conn.execute("SELECT config FROM experiments").fetchone()  # type: ignore[misc]
    config = ExperimentConfig.stored(raw)
    with svc.sessions() as session:
        assert jobs.release(session, 1, config.in_flight_limits(), config.max_spread) == []
    # Control's position 0 ends in both replicates: the window moves by one, and each stream takes its next job.
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'done' WHERE condition = 'control' AND position = 0")
    with svc.sessions() as session:
        released = jobs.release(session, 1, config.in_flight_limits(), config.max_spread)
    assert len(released) == 4
    assert _queued(database_url) == {
        ("baseline", 0, 4),
        ("baseline", 1, 4),
        ("control", 0, 1),
        ("control", 1, 1),
    }
    svc.engine.dispose()


def test_spread_bound_holds_at_every_moment_with_several_workers(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """Three workers, a relaxed and a strict condition, two replicates; sampled all along the run: no job is
    ever in flight at or past the lowest open position + max_spread, and the streams' finished counts never
    differ by more than max_spread."""
    window = 3
    cfg = write_config(tmp_path, name="fair", limit=24, replicates=2, conditions=MIXED)
    text = cfg.read_text() + f"max_spread: {window}\n"
    cfg.write_text(text)
    env = {**services_env, "SWARMQ_TEST_GEN_DELAY": "0.01"}
    assert swarmq("enqueue", str(cfg), env=env).returncode == 0
    samples: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT max(position) FILTER (WHERE status IN ('queued', 'running')), "
                    "min(position) FILTER (WHERE status IN ('pending', 'queued', 'running')) FROM jobs"
                ).fetchone()
                done = conn.execute(
                    "SELECT count(*) FILTER (WHERE status IN ('done', 'failed')) FROM jobs "
                    "GROUP BY condition, replicate"
                ).fetchall()
                if row is not None and row[0] is not None:
                    samples.append(
                        (int(row[0]), int(row[1]), max(d for (d,) in done) - min(d for (d,) in done))
                    )
                time.sleep(0.02)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "swarmq",
                "worker",
                "--cpu",
                "--burst",
                "--generator",
                "tests.fakes:hash_generator",
                "--name",
                f"fair{i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(3)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out[-3000:]
    stop.set()
    watcher.join(timeout=5)
    assert_exactly_once(database_url, redis_url, 24 * 2 * 2)
    assert len(samples) > 20, "the run ended before it could be observed"
    assert all(furthest < lowest + window for furthest, lowest, _ in samples), samples
    assert max(spread for _, _, spread in samples) <= window
