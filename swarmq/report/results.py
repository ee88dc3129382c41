"""Results tables: per-group counts and rates with 95% intervals (Wilson, and clustered by issue per
condition), pairwise comparisons of conditions on matched (issue, replicate) pairs (paired difference with a
clustered interval, sign-flip test, Holm-adjusted p; Fisher's test beside, for independent outcomes only),
means over replicates, and the swarm's specialization metrics (S beside its random-routing expectation, F,
and D per replicate, replayed from Postgres, beside its null reference). Rates are over the matched set by
default: a partial run compares conditions on the same (replicate, issue) pairs.

Counts come from the aggregates kept at write time (`store.aggregates`), or with ``recount`` from a GROUP
BY over every job and outcome (`queries`); statistics are the pure functions of `stats.py` and `paired.py`.
The report reads each aggregate table once (`queries.group_levels`) and computes on columns (numpy) rather
than a Python row per agent or cell, so that a million outcomes stay cheap (bench figure 5).
"""

from __future__ import annotations

import gc
import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from swarmq.experiment.config import ExperimentConfig
from swarmq.report import paired, queries, stats
from swarmq.report.queries import GROUPINGS
from swarmq.store.experiments import experiment_row, latest_name
from swarmq.streams.sync import final_buffers

AGENT_STRIDE = 1_000_000
"""(replicate, agent) → one integer id for the contingency tables."""


def comparisons(
    session: Session, experiment_id: int, groups: list[dict[str, Any]], *, recount: bool = False
) -> list[dict[str, Any]]:
    """Every pair of conditions on their matched (issue, replicate) pairs (`paired.py`), Holm-adjusted
    across pairs; Fisher's exact test on the pooled counts is kept beside, valid only if outcomes were
    independent."""
    pairs = list(combinations(groups, 2))
    sums = queries.paired_sums_of(
        session, experiment_id, [(a["condition"], b["condition"]) for a, b in pairs], recount=recount
    )
    out = []
    for (a, b), per_issue in zip(pairs, sums, strict=True):
        c = stats.fisher_compare(int(a["successes"]), int(a["judged"]), int(b["successes"]), int(b["judged"]))
        p = paired.paired_from_sums(per_issue)
        out.append(
            {
                "a": a["condition"],
                "b": b["condition"],
                "pairs": p.pairs,
                "issues": p.issues,
                "paired_diff": p.diff,
                "paired_ci95": list(p.ci95),
                "p_paired": p.p,
                "mdd80": _num(p.mdd80),
                "p_fisher": c.p_fisher,
                "diff": c.diff,
                "diff_ci95": list(c.diff_ci95),
            }
        )
    for entry, adjusted in zip(out, paired.holm([e["p_paired"] for e in out]), strict=True):
        entry["p_holm"] = adjusted
    return out


def clustered_intervals(
    session: Session,
    experiment_id: int,
    groups: list[dict[str, Any]],
    conditions: int | None,
    *,
    recount: bool = False,
) -> None:
    """Add each condition's 95% interval clustered by issue (replicates of an issue are not independent), over
    the matched set when ``conditions`` is given."""
    counts = queries.issue_counts(session, experiment_id, conditions, recount=recount)
    for g in groups:
        r = paired.rate_from_counts(counts.get(g["condition"], []))
        g["ci95_clustered"], g["issues"] = list(r.ci95), r.clusters


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def replicate_spread(replicates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per condition: mean and standard deviation of the success rate over replicates (``replicates``: the
    groups by replicate)."""
    rates: dict[str, list[float]] = defaultdict(list)
    for g in replicates:
        if g["success_rate"] is not None:
            rates[g["condition"]].append(g["success_rate"])
    out = {}
    for cond, values in rates.items():
        mean, sd = stats.mean_spread(values)
        out[cond] = {"replicates": len(values), "mean_success_rate": mean, "sd": sd}
    return out


def divergence(session: Session, experiment_id: int, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """D per replicate, from the buffers replayed out of Postgres (`streams.sync.final_buffers`), as mean ± sd
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
and deals each 200 times for its null reference, seconds at a million outcomes (`--divergence` asks
anyway)."""


def specialization_metrics(
    session: Session,
    experiment_id: int,
    config: dict[str, Any],
    *,
    recount: bool = False,
    divergence_too: bool = True,
) -> dict[str, dict[str, Any]]:
    """S (with permutation p and its expectation under random routing), F (Cramér's V and chi-square p) per
    condition; D per replicate with its null reference (`divergence`).

    Agent 0 of replicate 0 and agent 0 of replicate 1 are different agents (independent swarms), so the
    agent in these tables is the pair (replicate, agent): pooling replicates never merges unrelated agents.
    """
    cells = queries.agent_type_cells(session, experiment_id, recount=recount)
    d_values = divergence(session, experiment_id, config) if divergence_too else {}
    out: dict[str, dict[str, Any]] = {}
    for cond, c in sorted(cells.items()):
        jobs, successes = agent_type_tables(c)
        s_val = stats.specialization_from_matrix(jobs, permutations=1000, seed=0)
        f_val = stats.differentiation_from_matrix(successes)
        out[cond] = {
            "S": s_val.value,
            "S_p": s_val.p,
            "S_random": s_val.expected,
            "F_cramers_v": f_val.value,
            "F_p": f_val.p,
            **d_values.get(cond, {}),
        }
    return out


def agent_type_tables(cells: queries.AgentTypeCells) -> tuple[np.ndarray, np.ndarray]:
    """One condition's agents × task types tables of jobs and of successes, rows by (replicate, agent) and
    columns by task type, both in sorted order (task types by code point): the order the permutation test of S
    takes the cells in, whatever order they were read in or the database's collation."""
    agents = np.asarray(cells.replicate, dtype=np.int64) * AGENT_STRIDE + np.asarray(
        cells.agent, dtype=np.int64
    )
    _, row = np.unique(agents, return_inverse=True)
    types = {t: i for i, t in enumerate(sorted(set(cells.task_type)))}  # a handful: no string sort per cell
    col = np.fromiter((types[t] for t in cells.task_type), dtype=np.int64, count=len(cells.task_type))
    shape = (int(row.max(initial=-1)) + 1, len(types))
    jobs, successes = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
    np.add.at(jobs, (row.ravel(), col), np.asarray(cells.outcomes, dtype=np.int64))
    np.add.at(successes, (row.ravel(), col), np.asarray(cells.successes, dtype=np.int64))
    return jobs, successes


def results(
    session: Session,
    name: str | None,
    by: str = "condition",
    *,
    matched: bool = True,
    recount: bool = False,
    divergence_too: bool | None = None,
) -> dict[str, Any]:
    """The results of experiment ``name`` (None: the newest). With ``matched`` (the default), rates compare
    the conditions on the (replicate, issue) pairs every condition has a judged outcome for
    (`queries.MATCHED`); each group says how many judged outcomes fall ``outside``. With ``recount``, every
    count is recomputed from the rows instead of read from the aggregates (the same numbers, slower). D is
    computed when ``divergence_too`` says so, by default up to `DIVERGENCE_AUTO` outcomes."""
    if by not in GROUPINGS:
        raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}")
    with collection_paused():
        return _results(session, name, by, matched=matched, recount=recount, divergence_too=divergence_too)


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a report is built, then resumed as it was.

    Why: a million outcomes make ~60,000 container objects (fetched rows, group keys, the report's own rows);
    every 700 allocations start a collection and every few of those walk all of the process's objects
    (~140,000 with SQLAlchemy, numpy and scipy loaded): a large share of `results(by="agent")` at that size
    (bench figure 5). Reference counting still frees everything the report drops; only objects in reference
    cycles wait, until the collector resumes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _results(
    session: Session, name: str | None, by: str, *, matched: bool, recount: bool, divergence_too: bool | None
) -> dict[str, Any]:
    name = name or latest_name(session)
    exp_id, config = experiment_row(session, name)
    brief = () if by == "replicate" else ("replicate",)  # the spread over replicates needs only their rates
    levels = queries.group_levels(
        session,
        exp_id,
        [by, "condition", "replicate"],
        config,
        matched=matched,
        recount=recount,
        p95=(by, "condition"),
        brief=brief,
    )
    groups, by_condition = levels[by], levels["condition"]
    clustered_intervals(
        session, exp_id, by_condition, len(config["conditions"]) if matched else None, recount=recount
    )
    return {
        "experiment": name,
        "by": by,
        "success_rule": config.get("success", {}).get("rule", "scorer"),
        "matched": matched,
        "groups": groups,
        "comparisons": comparisons(session, exp_id, by_condition, recount=recount),
        "replicates": replicate_spread(levels["replicate"]),
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
