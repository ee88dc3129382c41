"""Results tables: per-group counts and rates with 95% intervals (clustered per condition; Wilson, which
assumes independence, beside), pairwise comparisons of conditions on the matched (replicate, issue) cells
(`paired`: t(G − 1) on a standard error clustered by issue, and by replicate where swarms vary; Holm across
pairs; the detectable difference of that test), the conclusion and its sensitivity to scoring errors, an
interim flag while jobs remain (`interim`), pass@k when several samples were run (`passk`), means over
replicates, and the swarm metrics S, F and D, each beside its reference. Rates and comparisons are over the
same matched set by default: a partial run compares conditions on the same (replicate, issue) pairs.

With ``generation.samples: n``, every table but pass@k counts each cell's sample 0 only (`queries.PRIMARY`,
and the aggregates), so that it equals the one-sample run's; pass@k uses all n samples.

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
from swarmq.report import design, interim, paired, passk, queries, signflip, stats
from swarmq.report.queries import GROUPINGS
from swarmq.store.experiments import experiment_row, latest_name
from swarmq.streams.sync import final_buffers

AGENT_STRIDE = 1_000_000
"""(replicate, agent) → one integer id for the contingency tables."""


def comparisons(
    cells: queries.Cells,
    order: list[str],
    accumulating: set[str],
    *,
    matched: bool,
) -> list[dict[str, Any]]:
    """Every pair of conditions (in ``order``) compared on (replicate, issue) cells (`paired.compare`): with
    ``matched``, the matched set every condition's rate is over (so a difference is the gap between the rates
    shown); else each pair's own cells judged in both. Holm-adjusted across pairs; "detectable" is for that
    test after Holm. The variance between swarms is in the comparison when either condition accumulates and
    there are at least `design.MIN_REPLICATES` replicates; with fewer, ``conditional`` says the comparison
    holds for these swarms only. Fisher's exact test on the same cells' counts is kept beside, valid only if
    outcomes were independent, and so is the exact sign-flip test of the issues' summed differences
    (``p_sign_flip``: valid conditional on these swarms only, as it ignores the variance between them)."""
    index = {c: k for k, c in enumerate(cells.names)}
    pairs = [(a, b) for a, b in combinations(order, 2) if a in index and b in index]
    everywhere = cells.judged.all(axis=1)
    out: list[dict[str, Any]] = []
    for a, b in pairs:
        ka, kb = index[a], index[b]
        mask = everywhere if matched else cells.judged[:, ka] & cells.judged[:, kb]
        sa, sb = cells.success[mask, ka], cells.success[mask, kb]
        swarms = bool({a, b} & accumulating)
        replicates = paired.groups(cells.replicate[mask])
        c = paired.compare(
            sa.astype(float) - sb,
            cells.issue[mask],
            cells.replicate[mask],
            two_way=swarms and replicates >= design.MIN_REPLICATES,
        )
        n = int(mask.sum())
        issue_sums = np.bincount(
            cells.issue[mask], weights=sa.astype(np.int64) - sb, minlength=len(cells.issue_ids)
        )
        f = stats.fisher_compare(int(sa.sum()), n, int(sb.sum()), n)
        out.append(
            {
                "a": a,
                "b": b,
                "pairs": c.pairs,
                "issues": c.issues,
                "replicates": c.replicates,
                "paired_diff": c.diff,
                "paired_se": _num(c.se),
                "df": c.df,
                "paired_ci95": list(c.ci95),
                "p_paired": c.p,
                "two_way": c.two_way,
                "conditional": swarms and not c.two_way,
                "p_sign_flip": signflip.sign_flip_p(issue_sums.astype(np.int64)),
                "p_fisher": f.p_fisher,
                "diff": f.diff,
                "diff_ci95": list(f.diff_ci95),
            }
        )
    for entry, adjusted in zip(out, paired.holm([e["p_paired"] for e in out]), strict=True):
        entry["p_holm"] = adjusted
        se = entry["paired_se"]
        entry["mdd80"] = None if se is None else paired.detectable(se, entry["df"], len(out))
    return out


def task_type_comparisons(
    cells: queries.Cells, order: list[str], accumulating: set[str], *, matched: bool
) -> list[dict[str, Any]]:
    """`comparisons` within each task type, Holm-adjusted (and "detectable" sized) across the whole family of
    task types × pairs: looking at every type is that many more chances of a false positive."""
    types = np.array(cells.task_type, dtype=object)
    out: list[dict[str, Any]] = []
    for t in sorted(set(cells.task_type)):
        keep = types == t
        sub = cells._replace(
            replicate=cells.replicate[keep],
            issue=cells.issue[keep],
            task_type=[t] * int(keep.sum()),
            judged=cells.judged[keep],
            success=cells.success[keep],
        )
        out.extend({"task_type": t, **c} for c in comparisons(sub, order, accumulating, matched=matched))
    for entry, adjusted in zip(out, paired.holm([e["p_paired"] for e in out]), strict=True):
        entry["p_holm"] = adjusted
        se = entry["paired_se"]
        entry["mdd80"] = None if se is None else paired.detectable(se, entry["df"], len(out))
    return out


def clustered_intervals(
    cells: queries.Cells, groups: list[dict[str, Any]], accumulating: set[str], *, matched: bool
) -> None:
    """Add each condition's 95% interval accounting for clustering (`paired.rate`: by issue, and by replicate
    for an accumulating condition with enough swarms), over the matched set when ``matched``."""
    index = {c: k for k, c in enumerate(cells.names)}
    everywhere = cells.judged.all(axis=1)
    for g in groups:
        k = index.get(g["condition"])
        if k is None:
            g["ci95_clustered"], g["issues"] = [0.0, 1.0], 0
            continue
        mask = everywhere if matched else cells.judged[:, k]
        reps = paired.groups(cells.replicate[mask])
        r = paired.rate(
            cells.success[mask, k].astype(float),
            cells.issue[mask],
            cells.replicate[mask],
            two_way=g["condition"] in accumulating and reps >= design.MIN_REPLICATES,
        )
        g["ci95_clustered"], g["issues"] = list(r.ci95), r.clusters


def significant(comps: list[dict[str, Any]]) -> list[str]:
    """The pairs whose Holm p is below 0.05, as "a > b" or "a < b": the conclusion of a comparison table."""
    return [
        f"{c['a']} {'>' if c['paired_diff'] > 0 else '<'} {c['b']}"
        for c in comps
        if c["p_holm"] < paired.ALPHA
    ]


def scoring_sensitivity(
    cells: queries.Cells,
    errors: list[tuple[str, int, str]],
    order: list[str],
    accumulating: set[str],
    *,
    matched: bool,
) -> dict[str, list[str]] | None:
    """The conclusions (`significant`) if every outcome the scorer could not judge were a failure, and if
    every one were a success; None without scoring errors."""
    if not errors:
        return None
    index = {c: k for k, c in enumerate(cells.names)}
    issue_codes = {i: k for k, i in enumerate(cells.issue_ids)}
    for _, _, i in errors:
        issue_codes.setdefault(i, len(issue_codes))
    where = {(int(r), int(i)): k for k, (r, i) in enumerate(zip(cells.replicate, cells.issue, strict=True))}
    extra = sorted({(r, issue_codes[i]) for _, r, i in errors} - set(where))
    replicate = np.concatenate([cells.replicate, np.array([r for r, _ in extra], dtype=np.int64)])
    issue = np.concatenate([cells.issue, np.array([i for _, i in extra], dtype=np.int64)])
    where.update({key: len(cells.replicate) + k for k, key in enumerate(extra)})
    out = {}
    for name, value in (("as_failures", False), ("as_successes", True)):
        judged = np.vstack([cells.judged, np.zeros((len(extra), len(cells.names)), dtype=bool)])
        success = np.vstack([cells.success, np.zeros((len(extra), len(cells.names)), dtype=bool)])
        for c, r, i in errors:
            if c in index:
                row = where[(r, issue_codes[i])]
                judged[row, index[c]], success[row, index[c]] = True, value
        changed = cells._replace(replicate=replicate, issue=issue, judged=judged, success=success)
        out[name] = significant(comparisons(changed, order, accumulating, matched=matched))
    return out


def samples_of(config: dict[str, Any]) -> int:
    """Samples per (condition, replicate, issue) the experiment asked for (``generation.samples``, 1 when
    absent)."""
    return int((config.get("generation") or {}).get("samples", 1) or 1)


def pass_at_k_of(session: Session, experiment_id: int, accumulating: set[str]) -> dict[str, dict[str, Any]]:
    """Per condition, pass@1 … pass@k over its (replicate, issue) cells (`passk.pass_table`)."""
    per: dict[str, list[tuple[int, str, int, int]]] = defaultdict(list)
    for cond, r, i, n, c in queries.sample_counts(session, experiment_id):
        per[cond].append((r, i, n, c))
    out = {}
    for cond, rows in sorted(per.items()):
        reps = np.array([r for r, _, _, _ in rows], dtype=np.int64)
        _, issue = np.unique(np.array([i for _, i, _, _ in rows], dtype=object), return_inverse=True)
        samples = np.array([x[2] for x in rows], dtype=np.int64)
        table = passk.pass_table(
            samples,
            np.array([x[3] for x in rows], dtype=np.int64),
            issue.ravel(),
            reps,
            two_way=cond in accumulating and np.unique(reps).size >= design.MIN_REPLICATES,
        )
        out[cond] = {"samples": int(samples.max()), "pass": table}
    return out


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
    """Per condition, S and F beside their references and p-values (`swarm_metrics`), pooled and, up to
    `PER_REPLICATE_MAX` replicates, per replicate; D per replicate with its null reference (`divergence`).

    Agent 0 of replicate 0 and agent 0 of replicate 1 are different agents (independent swarms), so the
    agent in these tables is the pair (replicate, agent): pooling replicates never merges unrelated agents.
    """
    cells = queries.agent_type_cells(session, experiment_id, recount=recount)
    d_values = divergence(session, experiment_id, config) if divergence_too else {}
    out: dict[str, dict[str, Any]] = {}
    for cond, c in sorted(cells.items()):
        jobs, successes = agent_type_tables(c)
        rows = np.unique(np.asarray(c.replicate, dtype=np.int64) * AGENT_STRIDE + np.asarray(c.agent))
        row_reps = rows // AGENT_STRIDE
        out[cond] = {
            **swarm_metrics(jobs, successes, row_reps, permutations=1000),
            "per_replicate": {}
            if np.unique(row_reps).size > PER_REPLICATE_MAX
            else {
                int(r): swarm_metrics(
                    jobs[row_reps == r],
                    successes[row_reps == r],
                    row_reps[row_reps == r],
                    permutations=PER_REPLICATE_PERMUTATIONS,
                )
                for r in np.unique(row_reps).tolist()
            },
            **d_values.get(cond, {}),
        }
    return out


PER_REPLICATE_PERMUTATIONS = 200
"""Shuffles of each replicate's own S and F references (the pooled ones take 1,000)."""
PER_REPLICATE_MAX = 10
"""Up to this many replicates each gets its own S and F row; beyond, the pooled row only (a table of hundreds
of replicates is not read row by row, and each row costs its shuffles)."""
LARGE_F_PERMUTATIONS = 200
"""Deals of F's reference beyond `stats.EXACT_LIMIT` jobs: each deal draws every (replicate, type)'s
successes, seconds per thousand deals at a million outcomes; 200 still put p within ±0.03 at 0.05."""


def swarm_metrics(
    jobs: np.ndarray, successes: np.ndarray, row_replicates: np.ndarray, *, permutations: int
) -> dict[str, Any]:
    """S and F with their references and p-values, from agents × task types tables whose rows are (replicate,
    agent) with these replicates: S against within-replicate shuffles of the agents, F against successes
    dealt at random within each (replicate, task type). F is None with one agent per replicate."""
    s_val = stats.specialization_from_matrix(
        jobs, row_replicates=row_replicates, permutations=permutations, seed=0
    )
    deals = permutations if int(jobs.sum()) <= stats.EXACT_LIMIT else min(permutations, LARGE_F_PERMUTATIONS)
    f_val = stats.differentiation(jobs, successes, row_replicates=row_replicates, permutations=deals, seed=0)
    return {
        "S": s_val.value,
        "S_p": s_val.p,
        "S_random": s_val.expected,
        "F_cramers_v": f_val.value,
        "F_p": f_val.p if f_val.value is not None else None,
        "F_random": f_val.expected,
    }


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
    cfg = ExperimentConfig.stored(config)
    accumulating = {c for c, cond in cfg.conditions.items() if cond.accumulate}
    cells = queries.cells(session, exp_id, config, recount=recount)
    clustered_intervals(cells, by_condition, accumulating, matched=matched)
    order = [g["condition"] for g in by_condition]
    comps = comparisons(cells, order, accumulating, matched=matched)
    errors = queries.scoring_error_cells(session, exp_id) if comps else []
    return {
        "experiment": name,
        "by": by,
        "success_rule": config.get("success", {}).get("rule", "scorer"),
        "matched": matched,
        "samples": samples_of(config),
        "interim": interim.experiment_is_interim(session, exp_id),
        "replicates_run": paired.groups(cells.replicate),
        "accumulating": sorted(accumulating),
        "groups": groups,
        "comparisons": comps,
        "conclusion": significant(comps),
        "task_type_comparisons": (
            task_type_comparisons(cells, order, accumulating, matched=matched) if by == "task_type" else []
        ),
        "scoring_sensitivity": scoring_sensitivity(cells, errors, order, accumulating, matched=matched),
        "pass_at_k": pass_at_k_of(session, exp_id, accumulating) if samples_of(config) > 1 else {},
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
