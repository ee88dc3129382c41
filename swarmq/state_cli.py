"""`swarmq state show|rebuild`: read stream state from Redis; rebuild it from Postgres."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from swarmq.config import ExperimentConfig
from swarmq.results import experiment_row
from swarmq.swarm import StreamKey, SwarmStore


def _streams(cfg: ExperimentConfig, condition: str | None, replicate: int | None) -> list[tuple[str, int]]:
    return [
        (c, r)
        for c in cfg.conditions
        for r in range(cfg.replicates)
        if (condition is None or c == condition) and (replicate is None or r == replicate)
    ]


def state_json(svc: Any, session: Session, experiment: str, condition: str | None,
               replicate: int | None) -> dict[str, Any]:  # fmt: skip
    exp_id, config = experiment_row(session, experiment)
    cfg = ExperimentConfig.model_validate(config)
    store = SwarmStore(svc.redis)
    streams = []
    for cond, rep in _streams(cfg, condition, replicate):
        agents = cfg.conditions[cond].agents
        state = store.peek(StreamKey(experiment, cond, rep, exp_id), agents)
        entry: dict[str, Any] = {"condition": cond, "replicate": rep, "version": None, "agents": []}
        if state is not None:
            entry["version"] = state.version
            for view, buf in zip(state.agents, state.buffers, strict=True):
                types = sorted(set(view.attempts) | set(view.successes))
                entry["agents"].append({
                    "id": view.agent_id,
                    "buffer_size": len(buf),
                    "history": {t: {"attempts": view.attempts.get(t, 0), "successes": view.successes.get(t, 0)}
                                for t in types},
                })  # fmt: skip
        streams.append(entry)
    return {"experiment": experiment, "streams": streams}


def render_state(data: dict[str, Any], console: Console) -> None:
    t = Table(title=f"swarm state of {data['experiment']}")
    for col in ("condition", "rep", "version", "agent", "buffer", "per-type successes/attempts"):
        t.add_column(col)
    for s in data["streams"]:
        if s["version"] is None:
            t.add_row(s["condition"], str(s["replicate"]), "(no state)", "", "", "")
        for a in s["agents"]:
            hist = ", ".join(f"{k} {v['successes']}/{v['attempts']}" for k, v in a["history"].items()) or "-"
            t.add_row(s["condition"], str(s["replicate"]), str(s["version"]), str(a["id"]), str(a["buffer_size"]), hist)
    console.print(t)


def rebuild_all(svc: Any, experiment: str) -> int:
    """Drop and rebuild every stream of the experiment from its outcomes."""
    from swarmq.store import StreamRef
    from swarmq.sync import StreamSync

    with svc.sessions() as session:
        exp_id, config = experiment_row(session, experiment)
    cfg = ExperimentConfig.model_validate(config)
    sync = StreamSync(svc.sessions, SwarmStore(svc.redis))
    n = 0
    for cond, rep in _streams(cfg, None, None):
        c = cfg.conditions[cond]
        key = StreamKey(experiment, cond, rep, exp_id)
        sync.swarm.delete(key, c.agents)
        sync.rebuild(StreamRef(exp_id, cond, rep), key, c, cfg)
        n += 1
    return n
