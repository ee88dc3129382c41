"""Where a stream's live state in Redis and its rebuild from Postgres differ (pure): what `swarmq state check`
prints, one line per difference. Equal means the agents' buffers (ids, order, content), their histories, the
state version and each applied job's version all agree."""

from __future__ import annotations

from collections.abc import Mapping

from swarmq.swarm.routing import AgentView
from swarmq.swarm.state import Example, StreamState


def _ids(buffer: tuple[Example, ...]) -> str:
    return "[" + ", ".join(e.id for e in buffer) + "]"


def _history(view: AgentView) -> dict[str, tuple[int, int]]:
    types = set(view.attempts) | set(view.successes)
    return {t: (view.successes.get(t, 0), view.attempts.get(t, 0)) for t in types}


def differences(
    live: StreamState | None,
    rebuilt: StreamState,
    live_versions: Mapping[int, int],
    rebuilt_versions: Mapping[int, int],
) -> list[str]:
    """One line per difference between ``live`` (Redis; None when it holds no state) and ``rebuilt``;
    ``*_versions`` map each applied job id to the state version its update produced."""
    if live is None:
        if not rebuilt_versions:
            return []  # nothing has run yet: there is nothing to hold
        return ["no state in Redis (the next job rebuilds it; `swarmq state rebuild` does it now)"]
    out: list[str] = []
    if live.version != rebuilt.version:
        out.append(f"version: redis {live.version}, rebuild {rebuilt.version}")
    for agent, (lb, rb) in enumerate(zip(live.buffers, rebuilt.buffers, strict=True)):
        if [e.id for e in lb] != [e.id for e in rb]:
            out.append(f"agent {agent} buffer: redis {_ids(lb)}, rebuild {_ids(rb)}")
        else:
            out.extend(
                f"agent {agent} example {a.id}: content differs"
                for a, b in zip(lb, rb, strict=True)
                if a != b
            )
    for lv, rv in zip(live.agents, rebuilt.agents, strict=True):
        lh, rh = _history(lv), _history(rv)
        for t in sorted(set(lh) | set(rh)):
            if lh.get(t, (0, 0)) != rh.get(t, (0, 0)):
                (ls, la), (rs, ra) = lh.get(t, (0, 0)), rh.get(t, (0, 0))
                out.append(
                    f"agent {lv.agent_id} history {t}: redis {ls}/{la}, rebuild {rs}/{ra} successes/attempts"
                )
    for job in sorted(set(live_versions) | set(rebuilt_versions)):
        lv_, rv_ = live_versions.get(job), rebuilt_versions.get(job)
        if lv_ != rv_:
            out.append(f"job {job} applied at version: redis {_or_none(lv_)}, rebuild {_or_none(rv_)}")
    return out


def _or_none(v: int | None) -> str:
    return "(not applied)" if v is None else str(v)
