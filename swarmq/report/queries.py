"""The SQL behind results and plots: per-group counts and times, the (agent, task type) cells of the
specialization metrics, and per-job rows for learning curves. Each returns plain rows; `results.py`
turns them into statistics and `render.py`/`plots.py` draw them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.benchmarks.base import UNJUDGED

GROUPINGS = {
    "condition": ("j.condition",),
    "replicate": ("j.condition", "j.replicate"),
    "task_type": ("j.condition", "i.task_type"),
    "agent": ("j.condition", "j.replicate", "o.agent_id"),  # agent k of each replicate is its own agent
    "repo": ("j.condition", "i.repo"),
    "model": ("j.model_key",),  # several models in one experiment (`models:`): every condition on each
}
LABELS = {"j.condition": "condition", "j.replicate": "replicate", "i.task_type": "task_type",
          "o.agent_id": "agent", "i.repo": "repo", "j.model_key": "model"}  # fmt: skip


SUCCESS = "coalesce(o.success, false)"
"""An outcome's success under the experiment's rule: what the swarm learned from is what results count."""
SCORING_ERROR = f"o.score_status = '{UNJUDGED}'"
"""The scorer could not judge the outcome (sandbox, repository, harness): no evidence about the model, so
it is left out of success rates and counted in its own column."""


MATCHED = f"""
    SELECT j.replicate, j.instance_id FROM jobs j JOIN outcomes o ON o.job_id = j.id
    WHERE j.experiment_id = :e AND NOT coalesce({SCORING_ERROR}, false)
    GROUP BY j.replicate, j.instance_id HAVING count(DISTINCT j.condition) = :conditions
"""
"""The matched set: (replicate, issue) pairs with a judged outcome in every condition. A partial run compares
conditions on these by default, so that no condition's rate rests on issues another has not reached."""


def group_rows(session: Session, experiment_id: int, by: str, config: dict[str, Any], *,
               matched: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Per-group counts and rates. With ``matched``, successes, the judged count and the rate are those of the
    matched set (`MATCHED`), and ``outside`` counts the judged outcomes left out of it."""
    cols = GROUPINGS[by]
    select_cols = ", ".join(f"{c} AS {LABELS[c]}" for c in cols)
    inside = "m.instance_id IS NOT NULL" if matched else "true"
    sql = f"""
        WITH m AS ({MATCHED if matched else "SELECT NULL::int AS replicate, NULL::text AS instance_id LIMIT 0"})
        SELECT {select_cols},
               count(*) AS jobs,
               count(*) FILTER (WHERE j.status = 'done') AS done,
               count(*) FILTER (WHERE j.status = 'failed') AS failed,
               count(*) FILTER (WHERE j.status = 'running') AS running,
               count(o.id) AS outcomes,
               count(*) FILTER (WHERE {SCORING_ERROR}) AS scoring_errors,
               count(*) FILTER (WHERE o.id IS NOT NULL AND NOT coalesce({SCORING_ERROR}, false) AND {inside}) AS judged,
               count(*) FILTER (WHERE o.id IS NOT NULL AND NOT coalesce({SCORING_ERROR}, false) AND NOT ({inside})) AS outside,
               count(*) FILTER (WHERE {SUCCESS} AND {inside}) AS successes,
               count(*) FILTER (WHERE o.resolved) AS resolved,
               count(o.resolved) AS imported,
               avg(o.job_seconds) AS mean_seconds,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY o.job_seconds) AS p95_seconds,
               sum(o.completion_tokens) / nullif(sum(o.generation_seconds), 0) AS tokens_per_second,
               avg((o.finish_reason = 'length')::int) AS share_max_tokens,
               avg((o.error IS NOT NULL)::int) FILTER (WHERE o.id IS NOT NULL) AS share_errors
        FROM jobs j JOIN issues i ON i.id = j.issue_id LEFT JOIN outcomes o ON o.job_id = j.id
        LEFT JOIN m ON m.replicate = j.replicate AND m.instance_id = j.instance_id
        WHERE j.experiment_id = :e
        GROUP BY {", ".join(cols)} ORDER BY {", ".join(cols)}
    """
    from swarmq.report import stats  # scipy: only the commands that compute rates pay for it (not `status`)

    params = {"e": experiment_id, "conditions": len(config["conditions"])}
    out = []
    for r in session.execute(text(sql), params).mappings():
        g = dict(r)
        if by == "agent" and g["agent"] is None:
            continue  # jobs not yet routed, and failure outcomes, have no agent
        # Every job with a judged outcome counts, failures included (a prompt longer than n_ctx, a job that
        # failed as a whole): leaving them out would flatter the conditions whose prompts grow. Outcomes the
        # scorer could not judge do not (stated in scoring_errors), nor, by default, those outside the matched set.
        n = int(g["judged"])
        g["success_rate"] = g["successes"] / n if n else None
        g["ci95"] = list(stats.wilson_interval(int(g["successes"]), n))
        for k in ("mean_seconds", "p95_seconds", "tokens_per_second", "share_max_tokens", "share_errors"):
            g[k] = float(g[k]) if g[k] is not None else None
        out.append(g)
    return out


def agent_type_cells(session: Session, experiment_id: int, config: dict[str, Any]) -> list[Any]:
    """(condition, replicate, agent, task type, jobs, successes) for every cell that has outcomes."""
    rows = session.execute(
        text(
            f"SELECT j.condition, j.replicate, o.agent_id, o.task_type, count(*) AS n, "
            f"count(*) FILTER (WHERE {SUCCESS}) AS s "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = :e AND o.agent_id IS NOT NULL "
            "GROUP BY j.condition, j.replicate, o.agent_id, o.task_type"
        ),
        {"e": experiment_id},
    ).all()
    return list(rows)


JUDGED_OUTCOMES = f"""
    SELECT j.condition, j.replicate, j.instance_id, ({SUCCESS})::int AS s
    FROM jobs j JOIN outcomes o ON o.job_id = j.id
    WHERE j.experiment_id = :e AND NOT coalesce({SCORING_ERROR}, false)
"""


def issue_counts(session: Session, experiment_id: int, conditions: int | None) -> dict[str, list[tuple[int, int]]]:
    """Per condition, each issue's (judged outcomes, successes) over all replicates: clustered rates. With
    ``conditions`` (the experiment's number of conditions), over the matched set only."""
    where = f"WHERE (replicate, instance_id) IN ({MATCHED})" if conditions is not None else ""
    rows = session.execute(
        text(f"SELECT condition, instance_id, count(*), sum(s) FROM ({JUDGED_OUTCOMES}) x {where} GROUP BY 1, 2"),
        {"e": experiment_id, "conditions": conditions},
    ).all()
    out: dict[str, list[tuple[int, int]]] = {}
    for condition, _issue, n, successes in rows:
        out.setdefault(str(condition), []).append((int(n), int(successes)))
    return out


def paired_sums(session: Session, experiment_id: int, a: str, b: str) -> list[tuple[int, int]]:
    """Conditions ``a`` and ``b`` matched on (issue, replicate): each issue's (pairs, summed a − b success)."""
    rows = session.execute(
        text(
            f"WITH x AS ({JUDGED_OUTCOMES}) SELECT count(*), sum(xa.s - xb.s) FROM x xa JOIN x xb "
            "ON xb.instance_id = xa.instance_id AND xb.replicate = xa.replicate "
            "WHERE xa.condition = :a AND xb.condition = :b GROUP BY xa.instance_id"
        ),
        {"e": experiment_id, "a": a, "b": b},
    ).all()
    return [(int(n), int(d)) for n, d in rows]
