"""The SQL behind results and plots: per-group counts and times, the (agent, task type) cells of the
specialization metrics, per-issue counts for clustered intervals and paired comparisons. Each returns plain
rows; `results.py` turns them into statistics and `render.py`/`plots.py` draw them.

Two paths give the same rows: the aggregates kept at write time (`report.aggregated` over
`store.aggregates`, the default: a few thousand counter rows instead of every outcome), and the GROUP BY over
jobs ⋈ outcomes (``recount=True``: the reference the aggregates are tested against; also the only path for
the groupings the aggregates do not key, repo and model)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from swarmq.report.aggregated import aggregated_levels, with_rates
from swarmq.store import aggregates, counters

if TYPE_CHECKING:  # numpy is imported where it is used: `swarmq status` reads through here without it
    import numpy as np

GROUPINGS = {
    "condition": ("j.condition",),
    "replicate": ("j.condition", "j.replicate"),
    "task_type": ("j.condition", "i.task_type"),
    "agent": ("j.condition", "j.replicate", "o.agent_id"),  # agent k of each replicate is its own agent
    "repo": ("j.condition", "i.repo"),
    "model": ("j.model_key",),  # several models in one experiment (`models:`): every condition on each
}
LABELS = {
    "j.condition": "condition",
    "j.replicate": "replicate",
    "i.task_type": "task_type",
    "o.agent_id": "agent",
    "i.repo": "repo",
    "j.model_key": "model",
}


# The rules the aggregates count by (`store.counters`): the recount counts by the same ones.
SUCCESS = counters.SUCCESS
SCORING_ERROR = counters.SCORING_ERROR
JUDGED = counters.JUDGED
PRIMARY = counters.PRIMARY


MATCHED = f"""
    SELECT j.replicate, j.instance_id FROM jobs j JOIN outcomes o ON o.job_id = j.id
    WHERE j.experiment_id = :e AND {PRIMARY} AND {JUDGED}
    GROUP BY j.replicate, j.instance_id HAVING count(DISTINCT j.condition) = :conditions
"""
"""The matched set: (replicate, issue) pairs with a judged outcome in every condition. A partial run compares
conditions on these by default, so that no condition's rate rests on issues another has not reached."""


def group_rows(
    session: Session,
    experiment_id: int,
    by: str,
    config: dict[str, Any],
    *,
    matched: bool = True,
    recount: bool = False,
    p95: bool = True,
) -> list[dict[str, Any]]:
    """Per-group counts and rates. With ``matched``, successes, the judged count and the rate are those of the
    matched set (`MATCHED`), and ``outside`` counts the judged outcomes left out of it. From the aggregates
    unless ``recount`` (or the grouping is not one they keep); there, without ``p95``, p95_seconds is None
    (a caller that only wants rates skips the histogram)."""
    return group_levels(
        session, experiment_id, [by], config, matched=matched, recount=recount, p95=[by] if p95 else []
    )[by]


def group_levels(
    session: Session,
    experiment_id: int,
    levels: Sequence[str],
    config: dict[str, Any],
    *,
    matched: bool = True,
    recount: bool = False,
    p95: Collection[str] = (),
    brief: Collection[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    """`group_rows` for several groupings at once (results wants its grouping, the conditions, and the
    replicates' rates). From the aggregates, each of their tables is read once, at the finest grouping asked
    (`_aggregated_levels`); p95_seconds is computed for the groupings in ``p95`` only, and the groupings in
    ``brief`` may have only their key, judged, successes and success_rate.

    From the aggregates, the experiment's unfolded outcomes are folded first (`aggregates.fold`, waiting for
    folds in progress): this call and the aggregate reads after it (`cells`, `issue_counts`, `paired_sums_of`,
    `agent_type_cells`) count every outcome committed before it."""
    wanted = list(dict.fromkeys(levels))
    kept = [by for by in wanted if by in AGGREGATED and not recount]
    if not recount:  # every report starts here: the outcomes committed since the last fold are counted first
        bind = session.get_bind()
        aggregates.fold(bind.engine if isinstance(bind, Connection) else bind, experiment_id)
    out = (
        aggregated_levels(session, experiment_id, kept, matched=matched, p95=p95, brief=brief) if kept else {}
    )
    for by in wanted:
        if by not in out:
            out[by] = with_rates(_recounted_rows(session, experiment_id, by, config, matched=matched))
    return {by: out[by] for by in wanted}


AGGREGATED = ("condition", "replicate", "agent")
"""Groupings `group_rows` reads from the aggregates (the ones `results` and its default tables use). Each key
extends the one before, so the coarser groupings are sums of the finer ones."""
FLOATS = ("mean_seconds", "p95_seconds", "tokens_per_second", "share_max_tokens", "share_errors")


def _recounted_rows(
    session: Session, experiment_id: int, by: str, config: dict[str, Any], *, matched: bool
) -> list[dict[str, Any]]:
    """`group_rows` by a GROUP BY over every job (sample 0: `PRIMARY`) and outcome of the experiment."""
    cols = GROUPINGS[by]
    select_cols = ", ".join(f"{c} AS {LABELS[c]}" for c in cols)
    inside = "m.instance_id IS NOT NULL" if matched else "true"
    nothing = "SELECT NULL::int AS replicate, NULL::text AS instance_id LIMIT 0"
    sql = f"""
        WITH m AS ({MATCHED if matched else nothing})
        SELECT {select_cols},
               count(*) AS jobs,
               count(*) FILTER (WHERE j.status = 'done') AS done,
               count(*) FILTER (WHERE j.status = 'failed') AS failed,
               count(*) FILTER (WHERE j.status = 'running') AS running,
               count(o.id) AS outcomes,
               count(*) FILTER (WHERE {SCORING_ERROR}) AS scoring_errors,
               count(*) FILTER (WHERE {JUDGED} AND {inside}) AS judged,
               count(*) FILTER (WHERE {JUDGED} AND NOT ({inside})) AS outside,
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
        WHERE j.experiment_id = :e AND {PRIMARY}
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


class AgentTypeCells(NamedTuple):
    """One condition's (replicate, agent, task type) cells that have outcomes, as columns."""

    replicate: list[int]
    agent: list[int]
    task_type: list[str]
    outcomes: list[int]
    successes: list[int]


def agent_type_cells(
    session: Session, experiment_id: int, *, recount: bool = False
) -> dict[str, AgentTypeCells]:
    """Per condition, its cells' (replicate, agent, task type, jobs, successes), in no particular order. The
    aggregates key the cell by its issue's task type: an outcome records its issue's (`worker.planning`,
    `store.outcomes.failure_record`)."""
    if not recount:
        return {
            c: AgentTypeCells(*cols)
            for c, cols in aggregates.agent_type_columns(session, experiment_id).items()
        }
    rows = session.execute(
        text(
            f"SELECT j.condition, j.replicate, o.agent_id, o.task_type, count(*) AS n, "
            f"count(*) FILTER (WHERE {SUCCESS}) AS s "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id "
            f"WHERE j.experiment_id = :e AND {PRIMARY} AND o.agent_id IS NOT NULL "
            "GROUP BY j.condition, j.replicate, o.agent_id, o.task_type"
        ),
        {"e": experiment_id},
    ).all()
    per: dict[str, list[tuple[int, int, str, int, int]]] = {}
    for c, r, a, t, n, x in rows:
        per.setdefault(str(c), []).append((int(r), int(a), str(t), int(n), int(x)))
    return {c: AgentTypeCells(*(list(col) for col in zip(*cells, strict=True))) for c, cells in per.items()}


JUDGED_OUTCOMES = f"""
    SELECT j.condition, j.replicate, j.instance_id, ({SUCCESS})::int AS s
    FROM jobs j JOIN outcomes o ON o.job_id = j.id
    WHERE j.experiment_id = :e AND {PRIMARY} AND {JUDGED}
"""


def issue_counts(
    session: Session, experiment_id: int, conditions: int | None, *, recount: bool = False
) -> dict[str, list[tuple[int, int]]]:
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
        text(
            f"SELECT condition, instance_id, count(*), sum(s) FROM ({JUDGED_OUTCOMES}) x {where} "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        {"e": experiment_id, "conditions": conditions},
    ).all()
    for condition, _issue, n, successes in rows:
        out.setdefault(str(condition), []).append((int(n), int(successes)))
    return out


def paired_sums_of(
    session: Session, experiment_id: int, pairs: Sequence[tuple[str, str]], *, recount: bool = False
) -> list[list[tuple[int, int]]]:
    """`paired_sums` of each pair (a, b) of ``pairs``; from the aggregates in one read."""
    if recount:
        return [paired_sums(session, experiment_id, a, b, recount=True) for a, b in pairs]
    stored = aggregates.all_paired_sums(session, experiment_id)
    return [[(n, d) for _issue, n, d in aggregates.oriented(stored, a, b)] for a, b in pairs]


def paired_sums(
    session: Session, experiment_id: int, a: str, b: str, *, recount: bool = False
) -> list[tuple[int, int]]:
    """Conditions ``a`` and ``b`` matched on (issue, replicate): each issue's (pairs, summed a − b success),
    in issue order (the sign-flip test draws its signs per issue in this order)."""
    if not recount:
        return paired_sums_of(session, experiment_id, [(a, b)])[0]
    rows = session.execute(
        text(
            f"WITH x AS ({JUDGED_OUTCOMES}) SELECT count(*), sum(xa.s - xb.s) FROM x xa JOIN x xb "
            "ON xb.instance_id = xa.instance_id AND xb.replicate = xa.replicate "
            "WHERE xa.condition = :a AND xb.condition = :b GROUP BY xa.instance_id ORDER BY xa.instance_id"
        ),
        {"e": experiment_id, "a": a, "b": b},
    ).all()
    return [(int(n), int(d)) for n, d in rows]


class Cells(NamedTuple):
    """Every (replicate, issue) cell with a judged outcome in some condition, as columns: the conditions in
    byte order (``names``), and per cell which of them have a judged outcome and which succeeded."""

    names: list[str]
    replicate: np.ndarray
    """int64, one per cell."""
    issue: np.ndarray
    """int64 codes of the issues: indices into ``issue_ids``."""
    issue_ids: list[str]
    """The instance ids, sorted."""
    task_type: list[str]
    judged: np.ndarray
    """bool, cells × conditions."""
    success: np.ndarray
    """bool, cells × conditions (False where not judged)."""


def cells(session: Session, experiment_id: int, config: dict[str, Any], *, recount: bool = False) -> Cells:
    """The (replicate, issue) cells of the paired comparisons, from the aggregates' per-pair bitmasks
    (`agg_pairs`: bit k of a mask is the k-th condition in byte order) or, with ``recount``, the same masks
    from every judged outcome. Read as a handful of arrays, not a row per cell (hundreds of thousands at a
    million outcomes)."""
    import numpy as np

    names = sorted(config["conditions"], key=str.encode)
    if recount:
        bit = "(1::bigint << (array_position(CAST(:names AS text[]), j.condition::text) - 1))"
        source = f"""
            SELECT j.replicate, j.instance_id, min(i.task_type) AS task_type, bit_or({bit}) AS judged,
                   coalesce(bit_or({bit}) FILTER (WHERE {SUCCESS}), 0) AS succeeded
            FROM jobs j JOIN issues i ON i.id = j.issue_id JOIN outcomes o ON o.job_id = j.id
            WHERE j.experiment_id = :e AND {PRIMARY} AND {JUDGED} GROUP BY 1, 2"""
    else:
        source = "SELECT replicate, instance_id, task_type, judged, succeeded FROM agg_pairs " + (
            "WHERE experiment_id = :e AND judged <> 0"
        )
    sql = f"""
        WITH p AS ({source}),
        r AS (SELECT *, dense_rank() OVER (ORDER BY instance_id COLLATE "C") - 1 AS code FROM p)
        SELECT array_agg(replicate ORDER BY replicate, code), array_agg(code ORDER BY replicate, code),
               array_agg(coalesce(task_type, '') ORDER BY replicate, code),
               array_agg(judged ORDER BY replicate, code), array_agg(succeeded ORDER BY replicate, code),
               (SELECT array_agg(instance_id ORDER BY code) FROM (SELECT DISTINCT code, instance_id FROM r) d)
        FROM r"""
    row = session.execute(text(sql), {"e": experiment_id, "names": names}).one()
    replicate, code, task_type, judged, succeeded, ids = (list(x) if x is not None else [] for x in row)
    bits = 1 << np.arange(len(names), dtype=np.int64)
    judged_bits = np.array(judged, dtype=np.int64).reshape(-1, 1)
    success_bits = np.array(succeeded, dtype=np.int64).reshape(-1, 1)
    return Cells(
        names,
        np.array(replicate, dtype=np.int64),
        np.array(code, dtype=np.int64),
        [str(i) for i in ids],
        [str(t) for t in task_type],
        (judged_bits & bits) != 0,
        ((success_bits & bits) != 0) & ((judged_bits & bits) != 0),
    )


def scoring_error_cells(session: Session, experiment_id: int) -> list[tuple[str, int, str]]:
    """(condition, replicate, issue) of every outcome the scorer could not judge: the sensitivity line."""
    rows = session.execute(
        text(
            "SELECT j.condition, j.replicate, j.instance_id FROM jobs j JOIN outcomes o ON o.job_id = j.id "
            f"WHERE j.experiment_id = :e AND {PRIMARY} AND {SCORING_ERROR}"
        ),
        {"e": experiment_id},
    ).all()
    return [(str(c), int(r), str(i)) for c, r, i in rows]


def sample_counts(session: Session, experiment_id: int) -> list[tuple[str, int, str, int, int]]:
    """(condition, replicate, issue, judged samples, successes) of every cell: pass@k, over every sample (the
    one read here that is not restricted to `PRIMARY`)."""
    rows = session.execute(
        text(
            f"SELECT j.condition, j.replicate, j.instance_id, count(*), count(*) FILTER (WHERE {SUCCESS}) "
            "FROM jobs j JOIN outcomes o ON o.job_id = j.id "
            f"WHERE j.experiment_id = :e AND {JUDGED} GROUP BY 1, 2, 3"
        ),
        {"e": experiment_id},
    ).all()
    return [(str(a), int(r), str(i), int(n), int(s)) for a, r, i, n, s in rows]


def curve_rows(session: Session, experiment_id: int) -> list[dict[str, Any]]:
    """Each sample 0's outcome (`PRIMARY`): its stream, position, agent, task type, success and whether it was
    judged, in stream order: what the learning curves and routing heatmaps are drawn from, in the PNGs
    (`plots`) and in the viewer alike."""
    sql = f"""
        SELECT j.condition, j.replicate, j.position, o.agent_id, o.task_type, {SUCCESS} AS success,
               {JUDGED} AS judged
        FROM jobs j JOIN outcomes o ON o.job_id = j.id
        WHERE j.experiment_id = :e AND {PRIMARY}
        ORDER BY j.condition, j.replicate, j.position
    """
    return [dict(r) for r in session.execute(text(sql), {"e": experiment_id}).mappings()]
