"""Results tables: per-group counts and rates with 95% intervals (Wilson, and clustered by issue per
condition), pairwise comparisons of conditions on matched (issue, replicate) pairs (paired difference with a
clustered interval, sign-flip test, Holm-adjusted p; Fisher's test beside, for independent outcomes only),
means over replicates, and the swarm's specialization metrics (S beside its random-routing expectation, F,
and D per replicate, replayed from Postgres, beside its null reference). Rates are over the matched set by
default: a partial run compares conditions on the same (replicate, issue) pairs.

Counts come from the aggregates kept at write time (`store.aggregates`), or with ``recount`` from a GROUP BY
over every job and outcome (`queries`); statistics are the pure functions of `stats.py` and `paired.py`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations
from typing import Any

from sqlalchemy.orm import Session

from swarmq.experiment.config import ExperimentConfig
from swarmq.report import paired, queries, stats
from swarmq.report.queries import GROUPINGS, group_rows
from swarmq.store.experiments import experiment_row, latest_name
from swarmq.swarm.sync import final_buffers

AGENT_STRIDE = 1_000_000
"""(replicate, agent) → one integer id for the contingency tables."""


def comparisons(session: Session, experiment_id: int, groups: list[dict[str, Any]], *,
                recount: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Every pair of conditions on their matched (issue, replicate) pairs (`paired.py`), Holm-adjusted across
    pairs; Fisher's exact test on the pooled counts is kept beside, valid only if outcomes were independent."""
    out = []
    for a, b in combinations(groups, 2):
        c = stats.fisher_compare(int(a["successes"]), int(a["judged"]), int(b["successes"]), int(b["judged"]))
        p = paired.paired_from_sums(
            queries.paired_sums(session, experiment_id, a["condition"], b["condition"], recount=recount)
        )
        out.append({"a": a["condition"], "b": b["condition"], "pairs": p.pairs, "issues": p.issues,
                    "paired_diff": p.diff, "paired_ci95": list(p.ci95), "p_paired": p.p, "mdd80": _num(p.mdd80),
                    "p_fisher": c.p_fisher, "diff": c.diff, "diff_ci95": list(c.diff_ci95)})  # fmt: skip
    for entry, adjusted in zip(out, paired.holm([e["p_paired"] for e in out]), strict=True):
        entry["p_holm"] = adjusted
    return out


def clustered_intervals(session: Session, experiment_id: int, groups: list[dict[str, Any]],
                        conditions: int | None, *, recount: bool = False) -> None:  # fmt: skip
    """Add each condition's 95% interval clustered by issue (replicates of an issue are not independent), over
    the matched set when ``conditions`` is given."""
    counts = queries.issue_counts(session, experiment_id, conditions, recount=recount)
    for g in groups:
        r = paired.rate_from_counts(counts.get(g["condition"], []))
        g["ci95_clustered"], g["issues"] = list(r.ci95), r.clusters


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def replicate_spread(session: Session, experiment_id: int, config: dict[str, Any], *,
                     matched: bool, recount: bool = False) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per condition: mean and standard deviation of the success rate over replicates."""
    rates: dict[str, list[float]] = defaultdict(list)
    for g in group_rows(session, experiment_id, "replicate", config, matched=matched, recount=recount, p95=False):
        if g["success_rate"] is not None:
            rates[g["condition"]].append(g["success_rate"])
    out = {}
    for cond, values in rates.items():
        mean, sd = stats.mean_spread(values)
        out[cond] = {"replicates": len(values), "mean_success_rate": mean, "sd": sd}
    return out


def divergence(session: Session, experiment_id: int, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """D per replicate, from the buffers replayed out of Postgres (`swarm.sync.final_buffers`), as mean ± sd
    over replicates beside the mean of its null reference (`stats.divergence_null`). Conditions that do not
    accumulate have empty buffers and no D."""
    cfg = ExperimentConfig.stored(config)
    states = final_buffers(session, experiment_id, cfg)
    out: dict[str, dict[str, Any]] = {}
    for cond, c in cfg.conditions.items():
        if not c.accumulate:
            continue
        values, nulls = [], []
        for replicate in range(cfg.replicates):
            state = states.get((cond, replicate))
            texts = {i: [e.solution for e in buf] for i, buf in enumerate(state.buffers)} if state else {}
            values.append(stats.context_divergence(texts))
            nulls.append(stats.divergence_null(texts, seed=replicate))
        mean, sd = stats.mean_spread(values)
        out[cond] = {"D": mean, "D_sd": sd, "D_null": stats.mean_spread(nulls)[0], "D_replicates": values}
    return out


DIVERGENCE_AUTO = 20_000
"""Up to this many outcomes `results` computes D unless told otherwise: D replays every replicate's buffers
and deals each 200 times for its null reference, seconds at a million outcomes (`--divergence` asks anyway)."""


def specialization_metrics(session: Session, experiment_id: int, config: dict[str, Any], *,
                           recount: bool = False, divergence_too: bool = True) -> dict[str, dict[str, Any]]:  # fmt: skip
    """S (with permutation p and its expectation under random routing), F (Cramér's V and chi-square p) per
    condition; D per replicate with its null reference (`divergence`).

    Agent 0 of replicate 0 and agent 0 of replicate 1 are different agents (independent swarms), so the
    agent in these tables is the pair (replicate, agent): pooling replicates never merges unrelated agents.
    """
    rows = queries.agent_type_cells(session, experiment_id, config, recount=recount)
    per: dict[str, list[tuple[int, str, int, int]]] = defaultdict(list)
    for cond, replicate, agent, ttype, n, s in rows:
        per[cond].append((int(replicate) * AGENT_STRIDE + int(agent), str(ttype), int(n), int(s)))
    d_values = divergence(session, experiment_id, config) if divergence_too else {}
    out: dict[str, dict[str, Any]] = {}
    for cond, cells in sorted(per.items()):
        s_val = stats.specialization_from_counts({(a, t): n for a, t, n, _ in cells}, permutations=1000, seed=0)
        table: dict[int, dict[str, int]] = defaultdict(dict)
        for a, t, _, s in cells:
            table[a][t] = s
        f_val = stats.functional_differentiation(table)
        out[cond] = {"S": s_val.value, "S_p": s_val.p, "S_random": s_val.expected, "F_cramers_v": f_val.value,
                     "F_p": f_val.p, **d_values.get(cond, {})}  # fmt: skip
    return out


def results(session: Session, name: str | None, by: str = "condition", *, matched: bool = True,
            recount: bool = False, divergence_too: bool | None = None) -> dict[str, Any]:  # fmt: skip
    """The results of experiment ``name`` (None: the newest). With ``matched`` (the default), rates compare
    the conditions on the (replicate, issue) pairs every condition has a judged outcome for
    (`queries.MATCHED`); each group says how many judged outcomes fall ``outside``. With ``recount``, every
    count is recomputed from the rows instead of read from the aggregates (the same numbers, slower). D is
    computed when ``divergence_too`` says so, by default up to `DIVERGENCE_AUTO` outcomes."""
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}")
    name = name or latest_name(session)
    exp_id, config = experiment_row(session, name)
    groups = group_rows(session, exp_id, by, config, matched=matched, recount=recount)
    by_condition = (groups if by == "condition" else
                    group_rows(session, exp_id, "condition", config, matched=matched, recount=recount))  # fmt: skip
    clustered_intervals(session, exp_id, by_condition, len(config["conditions"]) if matched else None, recount=recount)
    return {
        "experiment": name,
        "by": by,
        "success_rule": config.get("success", {}).get("rule", "scorer"),
        "matched": matched,
        "groups": groups,
        "comparisons": comparisons(session, exp_id, by_condition, recount=recount),
        "replicates": replicate_spread(session, exp_id, config, matched=matched, recount=recount),
        "specialization": specialization_metrics(
            session,
            exp_id,
            config,
            recount=recount,
            divergence_too=(
                divergence_too
                if divergence_too is not None
                else sum(int(g["outcomes"]) for g in by_condition) <= DIVERGENCE_AUTO
            ),
        ),
    }
