"""The swarm's shared state in Redis: per stream, agents' buffers and per-task-type histories.

Every read-and-reserve and every update is one Lua script (atomic; called by SHA), so workers on many GPUs
never race. Updates are idempotent per job id. Postgres stays the source of truth: `state.state_from_updates`
rebuilds a stream from its outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import redis as redis_lib

from swarmq.swarm.routing import AgentView
from swarmq.swarm.state import Applied, Example, Stream, StreamState, Update


def _parse_state(raw: Sequence[Any], agents: int) -> StreamState:
    version, hist_flat, *buffers = raw
    attempts: list[dict[str, int]] = [{} for _ in range(agents)]
    successes: list[dict[str, int]] = [{} for _ in range(agents)]
    for i in range(0, len(hist_flat), 2):
        agent, rest = hist_flat[i].decode().split(":", 1)  # agent:task type:kind; a task type may hold ':'
        task_type, kind = rest.rsplit(":", 1)
        target = attempts if kind == "a" else successes
        if int(agent) < agents:
            target[int(agent)][task_type] = int(hist_flat[i + 1])
    views = tuple(AgentView(i, attempts[i], successes[i]) for i in range(agents))
    bufs = tuple(tuple(Example.from_json(e) for e in b) for b in buffers)
    return StreamState(int(version), views, bufs)


class SwarmStore:
    """Redis access for stream state. The Redis client is injected."""

    def __init__(self, client: redis_lib.Redis) -> None:
        self.redis = client
        lua = resources.files("swarmq.swarm") / "lua"
        self._snapshot = client.register_script((lua / "snapshot.lua").read_text())
        self._apply = client.register_script((lua / "apply.lua").read_text())
        self._restore = client.register_script((lua / "restore.lua").read_text())

    def snapshot(self, stream: Stream, agents: int, job_id: int) -> StreamState | None:
        """Read the state and record that ``job_id`` routed from this version; None if the state is
        missing."""
        keys = [stream.key("meta"), stream.key("hist"), stream.key("inflight"), *stream.buffer_keys(agents)]
        raw = self._snapshot(keys=keys, args=[job_id])
        return None if raw is None else _parse_state(raw, agents)

    def peek(self, stream: Stream, agents: int) -> StreamState | None:
        """Read without reserving (for `swarmq state show`)."""
        if not self.redis.exists(stream.key("meta")):
            return None
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(stream.key("meta"), "version")
        pipe.hgetall(stream.key("hist"))
        for k in stream.buffer_keys(agents):
            pipe.lrange(k, 0, -1)
        version, hist, *bufs = pipe.execute()
        flat = [x for kv in hist.items() for x in kv]
        return _parse_state([int(version or 0), flat, *bufs], agents)

    def apply(self, stream: Stream, update: Update, capacity: int) -> Applied:
        keys = [
            stream.key("meta"),
            stream.key("hist"),
            stream.key("applied"),
            stream.key("inflight"),
            stream.key(f"buf:{update.agent_id}"),
        ]
        example = update.example.to_json() if update.example is not None else ""
        args: list[str | int] = [
            update.job_id,
            update.agent_id,
            update.task_type,
            "1" if update.success else "0",
            example,
            capacity,
            "1" if update.judged else "0",
        ]
        status, version, staleness = self._apply(keys=keys, args=args)
        name = {1: "applied", 0: "duplicate", -1: "missing"}[int(status)]
        return Applied(name, int(version), None if int(staleness) < 0 else int(staleness))

    def applied_versions(self, stream: Stream) -> dict[int, int]:
        """Job id → the state version its update produced, for every update the stream's state holds."""
        key = stream.key("applied")
        raw = self.redis.hgetall(key) if self.redis.type(key) == b"hash" else {}
        return {
            int(k): int(str(v.decode() if isinstance(v, bytes) else v).split(":", 1)[0])
            for k, v in raw.items()
        }

    def restore(
        self, stream: Stream, agents: int, state: StreamState, applied: Mapping[int, int] | Sequence[int]
    ) -> bool:
        """Write a rebuilt state unless another process did first. ``applied``: each replayed job id with the
        version its update produced (`state.state_from_updates`); a plain sequence of ids counts 1, 2, 3."""
        versions = applied if isinstance(applied, Mapping) else {j: i + 1 for i, j in enumerate(applied)}
        hist: dict[str, int] = {}
        for view in state.agents:
            hist.update({f"{view.agent_id}:{t}:a": n for t, n in view.attempts.items()})
            hist.update({f"{view.agent_id}:{t}:s": n for t, n in view.successes.items()})
        payload = {
            "version": state.version,
            "hist": hist,
            "applied": [[str(job), version] for job, version in versions.items()],
            "buffers": [[e.to_json() for e in b] for b in state.buffers],
        }
        keys = [stream.key("meta"), stream.key("hist"), stream.key("applied"), *stream.buffer_keys(agents)]
        # cjson turns an empty JSON object into an empty table either way; hist {} is fine.
        return bool(self._restore(keys=keys, args=[json.dumps(payload)]))

    def purge(self, stream: Stream, agents: int) -> None:
        """Remove every key of the stream (its experiment is gone)."""
        parts = ["meta", "hist", "applied", "inflight"]
        self.redis.delete(*(stream.key(p) for p in parts), *stream.buffer_keys(agents))

    def delete(self, stream: Stream, agents: int) -> None:
        """Drop the stream's state, so that the next reader rebuilds it. The per-job versions stay (the
        rebuild's `restore` replaces them): they order the updates whose applied-mark has not landed in
        Postgres yet where Redis applied them."""
        parts = ["meta", "hist", "inflight"]
        self.redis.delete(*(stream.key(p) for p in parts), *stream.buffer_keys(agents))
