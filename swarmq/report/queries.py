"""The SQL behind results and plots: per-group counts and times, the (agent, task type) cells of the
specialization metrics, per-issue counts for clustered intervals and paired comparisons. Each returns plain
rows; `results.py` turns them into statistics and `render.py`/`plots.py` draw them.

Two paths give the same rows: the aggregates kept at write time (`store.aggregates`, the default: a few
thousand counter rows instead of every outcome), and the GROUP BY over jobs ⋈ outcomes (``recount=True``:
the reference the aggregates are tested against; also the only path for the groupings the aggregates do not
key, repo and model)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.benchmarks.base import UNJUDGED
from swarmq.store import aggregates

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
               matched: bool = True, recount: bool = False, p95: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Per-group counts and rates. With ``matched``, successes, the judged count and the rate are those of the
    matched set (`MATCHED`), and ``outside`` counts the judged outcomes left out of it. From the aggregates
    unless ``recount`` (or the grouping is not one they keep); there, without ``p95``, p95_seconds is None
    (a caller that only wants rates skips the histogram)."""
    if recount or by not in AGGREGATED:
        return [_rates(g) for g in _recounted_rows(session, experiment_id, by, config, matched=matched)]
    return [_rates(g) for g in _aggregated_rows(session, experiment_id, by, matched=matched, p95=p95)]


AGGREGATED = ("condition", "replicate", "agent")
"""Groupings `group_rows` reads from the aggregates (the ones `results` and its default tables use)."""
FLOATS = ("mean_seconds", "p95_seconds", "tokens_per_second", "share_max_tokens", "share_errors")


def _rates(g: dict[str, Any]) -> dict[str, Any]:
    """The rate and its Wilson interval. Every job with a judged outcome counts, failures included (a prompt
    longer than n_ctx, a job that failed as a whole): leaving them out would flatter the conditions whose
    prompts grow. Outcomes the scorer could not judge do not (stated in scoring_errors), nor, by default,
    those outside the matched set."""
    from swarmq.report import stats  # scipy: only the commands that compute rates pay for it (not `status`)

    n = int(g["judged"])
    g["success_rate"] = g["successes"] / n if n else None
    g["ci95"] = list(stats.wilson_interval(int(g["successes"]), n))
    return g


def _aggregated_rows(session: Session, experiment_id: int, by: str, *, matched: bool,
                     p95: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """`group_rows` from the aggregates: summed cells, running jobs read live, p95 from the histogram."""
    running = aggregates.running(session, experiment_id, by)
    times = aggregates.p95_seconds(session, experiment_id, by) if p95 else {}
    out = []
    for c in aggregates.cell_groups(session, experiment_id, by):
        key = tuple(c[k] for k in aggregates.GROUP_COLUMNS[by])
        if by == "agent" and c["agent"] < 0:
            continue  # jobs not yet routed, and failure outcomes, have no agent
        judged = int(c["matched"] if matched else c["judged"])
        g = {k: c[k] for k in aggregates.GROUP_COLUMNS[by]}
        g.update(
            jobs=int(c["jobs"]), done=int(c["done"]), failed=int(c["failed"]), running=running.get(key, 0),
            outcomes=int(c["outcomes"]), scoring_errors=int(c["scoring_errors"]), judged=judged,
            outside=int(c["judged"]) - judged if matched else 0,
            successes=int(c["matched_successes"] if matched else c["successes"]),
            resolved=int(c["resolved"]), imported=int(c["imported"]),
            mean_seconds=float(c["seconds_sum"] / c["seconds_n"]) if c["seconds_n"] else None,
            p95_seconds=times.get(key),
            tokens_per_second=float(c["tokens_sum"] / c["generation_sum"])
            if c["generation_n"] and c["generation_sum"] else None,
            share_max_tokens=c["length_n"] / c["finish_n"] if c["finish_n"] else None,
            share_errors=c["errors_n"] / c["outcomes"] if c["outcomes"] else None,
        )  # fmt: skip
        out.append(g)
    return out


def _recounted_rows(session: Session, experiment_id: int, by: str, config: dict[str, Any], *,
                    matched: bool) -> list[dict[str, Any]]:  # fmt: skip
    """`group_rows` by a GROUP BY over every job and outcome of the experiment."""
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
    params = {"e": experiment_id, "conditions": len(config["conditions"])}
    out = []
    for r in session.execute(text(sql), params).mappings():
        g = dict(r)
        if by == "agent" and g["agent"] is None:
            continue  # jobs not yet routed, and failure outcomes, have no agent
        for k in FLOATS:
            g[k] = float(g[k]) if g[k] is not None else None
        out.append(g)
    return out


def agent_type_cells(session: Session, experiment_id: int, config: dict[str, Any], *,
                     recount: bool = False) -> list[Any]:  # fmt: skip
    """(condition, replicate, agent, task type, jobs, successes) for every cell that has outcomes. The
    aggregates key the cell by its issue's task type: an outcome records its issue's (`worker.planning`,
    `store.outcomes.failure_record`)."""
    if not recount:
        return list(aggregates.agent_type_cells(session, experiment_id))
    rows = session.execute(
        text(
            f"SELECT j.condition, j.replicate, o.agent_id, o.task_type, count(*) AS n, "
            f"count(*) FILTER (WHERE {SUCCESS}) AS s "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id WHERE j.experiment_id = :e AND o.agent_id IS NOT NULL "
            "GROUP BY j.condition, j.replicate, o.agent_id, o.task_type ORDER BY 1, 2, 3, 4"
        ),
        {"e": experiment_id},
    ).all()
    return [(str(c), int(r), int(a), str(t), int(n), int(x)) for c, r, a, t, n, x in rows]


JUDGED_OUTCOMES = f"""
    SELECT j.condition, j.replicate, j.instance_id, ({SUCCESS})::int AS s
    FROM jobs j JOIN outcomes o ON o.job_id = j.id
    WHERE j.experiment_id = :e AND NOT coalesce({SCORING_ERROR}, false)
"""


def issue_counts(session: Session, experiment_id: int, conditions: int | None, *,
                 recount: bool = False) -> dict[str, list[tuple[int, int]]]:  # fmt: skip
    """Per condition, each issue's (judged outcomes, successes) over all replicates, in issue order: clustered
    rates. With ``conditions`` (the experiment's number of conditions), over the matched set only."""
    out: dict[str, list[tuple[int, int]]] = {}
    if not recount:
        for condition, _issue, n, successes in aggregates.issue_counts(
            session, experiment_id, matched=conditions is not None
        ):
            out.setdefault(condition, []).append((n, successes))
        return out
    where = f"WHERE (replicate, instance_id) IN ({MATCHED})" if conditions is not None else ""
    rows = session.execute(
        text(f"SELECT condition, instance_id, count(*), sum(s) FROM ({JUDGED_OUTCOMES}) x {where} GROUP BY 1, 2 "
             "ORDER BY 1, 2"),
        {"e": experiment_id, "conditions": conditions},
    ).all()  # fmt: skip
    for condition, _issue, n, successes in rows:
        out.setdefault(str(condition), []).append((int(n), int(successes)))
    return out


def paired_sums(session: Session, experiment_id: int, a: str, b: str, *,
                recount: bool = False) -> list[tuple[int, int]]:  # fmt: skip
    """Conditions ``a`` and ``b`` matched on (issue, replicate): each issue's (pairs, summed a − b success), in
    issue order (the sign-flip test draws its signs per issue in this order)."""
    if not recount:
        return [(n, d) for _issue, n, d in aggregates.paired_sums(session, experiment_id, a, b)]
    rows = session.execute(
        text(
            f"WITH x AS ({JUDGED_OUTCOMES}) SELECT count(*), sum(xa.s - xb.s) FROM x xa JOIN x xb "
            "ON xb.instance_id = xa.instance_id AND xb.replicate = xa.replicate "
            "WHERE xa.condition = :a AND xb.condition = :b GROUP BY xa.instance_id ORDER BY xa.instance_id"
        ),
        {"e": experiment_id, "a": a, "b": b},
    ).all()
    return [(int(n), int(d)) for n, d in rows]
