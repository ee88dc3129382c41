"""Results tables: per-group counts and rates with 95% Wilson intervals, pairwise Fisher comparisons,
means over replicates, and the swarm's specialization metrics (S, F, D).

Aggregation happens in Postgres (GROUP BY over the jobs/outcomes join); statistics are the pure functions
of `stats.py`.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq import stats
from swarmq.errors import UnknownExperiment

AGENT_STRIDE = 1_000_000
"""(replicate, agent) → one integer id for the contingency tables."""

GROUPINGS = {
    "condition": ("j.condition",),
    "replicate": ("j.condition", "j.replicate"),
    "task_type": ("j.condition", "i.task_type"),
    "agent": ("j.condition", "o.agent_id"),
    "repo": ("j.condition", "i.repo"),
}
LABELS = {"j.condition": "condition", "j.replicate": "replicate", "i.task_type": "task_type",
          "o.agent_id": "agent", "i.repo": "repo"}  # fmt: skip


def experiment_row(session: Session, name: str) -> tuple[int, dict[str, Any]]:
    row = session.execute(text("SELECT id, config FROM experiments WHERE name = :n"), {"n": name}).first()
    if row is None:
        known = session.execute(text("SELECT name FROM experiments ORDER BY created_at DESC LIMIT 5")).scalars().all()
        hint = f" (known: {', '.join(known)})" if known else " (no experiments yet)"
        raise UnknownExperiment(f"unknown experiment {name!r}{hint}")
    return int(row[0]), dict(row[1])


def success_expr(config: dict[str, Any]) -> str:
    rule = config.get("success", {}).get("rule", "scorer")
    return "coalesce(o.resolved, false)" if rule == "resolved" else "coalesce(o.success, false)"


def group_rows(session: Session, experiment_id: int, by: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    cols = GROUPINGS[by]
    select_cols = ", ".join(f"{c} AS {LABELS[c]}" for c in cols)
    succ = success_expr(config)
    sql = f"""
        SELECT {select_cols},
               count(*) AS jobs,
               count(*) FILTER (WHERE j.status = 'done') AS done,
               count(*) FILTER (WHERE j.status = 'failed') AS failed,
               count(*) FILTER (WHERE j.status = 'running') AS running,
               count(o.id) AS outcomes,
               count(*) FILTER (WHERE {succ}) AS successes,
               avg(o.job_seconds) AS mean_seconds,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY o.job_seconds) AS p95_seconds,
               sum(o.completion_tokens) / nullif(sum(o.generation_seconds), 0) AS tokens_per_second,
               avg((o.finish_reason = 'length')::int) AS share_max_tokens,
               avg((o.error IS NOT NULL)::int) FILTER (WHERE o.id IS NOT NULL) AS share_errors
        FROM jobs j JOIN issues i ON i.id = j.issue_id LEFT JOIN outcomes o ON o.job_id = j.id
        WHERE j.experiment_id = :e
        GROUP BY {", ".join(cols)} ORDER BY {", ".join(cols)}
    """
    out = []
    for r in session.execute(text(sql), {"e": experiment_id}).mappings():
        g = dict(r)
        if by == "agent" and g["agent"] is None:
            continue  # jobs not yet routed have no agent
        # Every job with an outcome counts, failures included (e.g. a prompt longer than n_ctx): leaving
        # them out would flatter the conditions whose prompts grow. Jobs that never produced one do not.
        n = int(g["outcomes"])
        g["success_rate"] = g["successes"] / n if n else None
        g["ci95"] = list(stats.wilson_interval(int(g["successes"]), n))
        for k in ("mean_seconds", "p95_seconds", "tokens_per_second", "share_max_tokens", "share_errors"):
            g[k] = float(g[k]) if g[k] is not None else None
        out.append(g)
    return out


def comparisons(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of conditions: two-sided Fisher's exact test and the rate difference with its 95% CI."""
    out = []
    for a, b in combinations(groups, 2):
        c = stats.fisher_compare(int(a["successes"]), int(a["outcomes"]), int(b["successes"]), int(b["outcomes"]))
        out.append({"a": a["condition"], "b": b["condition"], "p_fisher": c.p_fisher, "diff": c.diff,
                    "diff_ci95": list(c.diff_ci95)})  # fmt: skip
    return out


def replicate_spread(session: Session, experiment_id: int, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per condition: mean and standard deviation of the success rate over replicates."""
    rates: dict[str, list[float]] = defaultdict(list)
    for g in group_rows(session, experiment_id, "replicate", config):
        if g["success_rate"] is not None:
            rates[g["condition"]].append(g["success_rate"])
    out = {}
    for cond, values in rates.items():
        mean, sd = stats.mean_spread(values)
        out[cond] = {"replicates": len(values), "mean_success_rate": mean, "sd": sd}
    return out


def specialization_metrics(session: Session, experiment_id: int, config: dict[str, Any],
                           buffers: dict[str, dict[int, list[str]]] | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """S (with permutation p), F (Cramér's V and chi-square p) per condition; D when buffers are given.

    Agent 0 of replicate 0 and agent 0 of replicate 1 are different agents (independent swarms), so the
    agent in these tables is the pair (replicate, agent): pooling replicates never merges unrelated agents.
    """
    rows = session.execute(
        text(
            f"SELECT j.condition, j.replicate, o.agent_id, o.task_type, count(*) AS n, "
            f"count(*) FILTER (WHERE {success_expr(config)}) AS s "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = :e "
            "GROUP BY j.condition, j.replicate, o.agent_id, o.task_type"
        ),
        {"e": experiment_id},
    ).all()
    per: dict[str, list[tuple[int, str, int, int]]] = defaultdict(list)
    for cond, replicate, agent, ttype, n, s in rows:
        per[cond].append((int(replicate) * AGENT_STRIDE + int(agent), str(ttype), int(n), int(s)))
    out: dict[str, dict[str, Any]] = {}
    for cond, cells in sorted(per.items()):
        s_val = stats.specialization_from_counts({(a, t): n for a, t, n, _ in cells}, permutations=1000, seed=0)
        table: dict[int, dict[str, int]] = defaultdict(dict)
        for a, t, _, s in cells:
            table[a][t] = s
        f_val = stats.functional_differentiation(table)
        entry: dict[str, Any] = {"S": s_val.value, "S_p": s_val.p, "F_cramers_v": f_val.value, "F_p": f_val.p}
        if buffers is not None and cond in buffers:
            entry["D"] = stats.context_divergence(buffers[cond])
        out[cond] = entry
    return out


def results(session: Session, name: str, by: str = "condition",
            buffers: dict[str, dict[int, list[str]]] | None = None) -> dict[str, Any]:  # fmt: skip
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}")
    exp_id, config = experiment_row(session, name)
    groups = group_rows(session, exp_id, by, config)
    by_condition = groups if by == "condition" else group_rows(session, exp_id, "condition", config)
    return {
        "experiment": name,
        "by": by,
        "success_rule": config.get("success", {}).get("rule", "scorer"),
        "groups": groups,
        "comparisons": comparisons(by_condition),
        "replicates": replicate_spread(session, exp_id, config),
        "specialization": specialization_metrics(session, exp_id, config, buffers),
    }
