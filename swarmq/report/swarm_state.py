"""Live views of the swarm state in Redis (the one place `report/` reads Redis): agents, buffers and
histories per stream, and the check that they equal their rebuild from Postgres. (D is computed from
Postgres: `report.results.divergence`.)"""

from __future__ import annotations

from typing import Any

import redis as redis_lib
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from swarmq.experiment.config import ExperimentConfig
from swarmq.store.experiments import experiment_row
from swarmq.streams.sync import StreamSync
from swarmq.swarm.compare import differences
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.state import Stream


def streams_of(
    session: Session, experiment: str, condition: str | None = None, replicate: int | None = None
) -> tuple[ExperimentConfig, list[Stream]]:
    """An experiment's configuration and its streams (optionally one condition and/or replicate)."""
    exp_id, config = experiment_row(session, experiment)
    cfg = ExperimentConfig.stored(config)
    streams = [
        Stream(exp_id, experiment, c, r)
        for c in cfg.conditions
        for r in range(cfg.replicates)
        if (condition is None or c == condition) and (replicate is None or r == replicate)
    ]
    return cfg, streams


def state_json(
    redis: redis_lib.Redis, session: Session, experiment: str, condition: str | None, replicate: int | None
) -> dict[str, Any]:
    cfg, streams = streams_of(session, experiment, condition, replicate)
    store = SwarmStore(redis)
    out = []
    for stream in streams:
        state = store.peek(stream, cfg.conditions[stream.condition].agents)
        entry: dict[str, Any] = {
            "condition": stream.condition,
            "replicate": stream.replicate,
            "version": None,
            "agents": [],
        }
        if state is not None:
            entry["version"] = state.version
            for view, buf in zip(state.agents, state.buffers, strict=True):
                types = sorted(set(view.attempts) | set(view.successes))
                entry["agents"].append(
                    {
                        "id": view.agent_id,
                        "buffer_size": len(buf),
                        "history": {
                            t: {"attempts": view.attempts.get(t, 0), "successes": view.successes.get(t, 0)}
                            for t in types
                        },
                    }
                )
        out.append(entry)
    return {"experiment": experiment, "streams": out}


STATE_DIFFERS = 8
"""Exit code of `swarmq state check` when Redis and the rebuild differ: a finding, not an error."""


def state_check(sessions: sessionmaker[Session], redis: redis_lib.Redis, experiment: str) -> list[str]:
    """One line per difference between each stream's state in Redis and its rebuild from Postgres (buffers:
    ids, order and content; histories; versions). Read-only. Exact once the experiment is quiet; while jobs
    run, an update between its outcome write and its Redis apply shows as a passing difference."""
    with sessions() as session:
        cfg, streams = streams_of(session, experiment)
    sync = StreamSync(sessions, SwarmStore(redis))
    lines = []
    for stream in streams:
        rebuilt, versions = sync.replayed(stream, cfg)
        live = sync.swarm.peek(stream, cfg.conditions[stream.condition].agents)
        held = sync.swarm.applied_versions(stream) if live is not None else {}
        lines += [f"{stream}: {d}" for d in differences(live, rebuilt, held, versions)]
    return lines


def render_state(data: dict[str, Any], console: Console) -> None:
    t = Table(title=f"swarm state of {data['experiment']}")
    for col in ("condition", "rep", "version", "agent", "buffer", "per-type successes/attempts"):
        t.add_column(col)
    for s in data["streams"]:
        if s["version"] is None:
            t.add_row(s["condition"], str(s["replicate"]), "(no state)", "", "", "")
        for a in s["agents"]:
            hist = ", ".join(f"{k} {v['successes']}/{v['attempts']}" for k, v in a["history"].items()) or "-"
            t.add_row(
                s["condition"],
                str(s["replicate"]),
                str(s["version"]),
                str(a["id"]),
                str(a["buffer_size"]),
                hist,
            )
    console.print(t)
