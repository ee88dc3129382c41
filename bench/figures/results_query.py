"""Figure 5: results queries over 1,000,000 synthetic outcomes, bulk-loaded with COPY.

One experiment: 3 conditions (1-agent baseline, two 3-agent swarms) × the 164 HumanEval issues, repeated as
synthetic copies (``HumanEval/0~1``, …) as often as it takes to stay within the config's 1,000 replicates ×
as many replicates as it takes (492 issues × 678 replicates for 1,000,000 outcomes). Rows are narrow (empty prompt, one-line completion): real rows carry prompts, so a
real table of this size is larger on disk and scans are slower, not faster.
Rows are loaded with the aggregate triggers off, then counted once with `swarmq_agg_rebuild` (the backfill
of migration 0008; its time is in the details): the reads measured here are what the triggers keep.
Baseline: the minimal query for the same headline numbers, per-condition jobs and successes
(GROUP BY over jobs ⋈ outcomes). A query whose samples would add up past 60 s is measured fewer times;
the two parts of results() shown below it are timed once.
"""

from __future__ import annotations

import io
import math
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.env import BenchDB, fresh_database
from bench.figures import Context
from bench.measure import FigureResult, Row, check
from bench.workload import NULL_MODEL, experiment, humaneval_issues

KEY = "5"
TITLE = "results queries over synthetic outcomes"
NAME = "bench-results"
CONDITIONS = {
    "baseline": {"agents": 1, "router": "single"},
    "control": {"agents": 3, "router": "random", "accumulate": True},
    "experimental": {"agents": 3, "router": "affinity", "accumulate": True},
}
RATES = {"baseline": 0.30, "control": 0.33, "experimental": 0.36}
BUDGET_S = 60.0
"""Per query: no further sample once another would take the total past this (results() is slow at 1M rows)."""
BREAKDOWN = ("group_rows", "group_rows_recount", "specialization_metrics", "divergence")
"""Parts of results(), timed once each: they only say where its time goes."""
CHUNK = 50_000
MAX_REPLICATES = 1000
"""`ExperimentConfig.replicates`' bound: past it, the issues are copied instead."""


def _copy(conn: Any, table: str, columns: str, lines: Any) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buf = io.StringIO()
        for k, line in enumerate(lines, 1):
            buf.write(line)
            if k % CHUNK == 0:
                copy.write(buf.getvalue())
                buf = io.StringIO()
        copy.write(buf.getvalue())


def load(bench: BenchDB, outcomes: int) -> dict[str, Any]:
    from swarmq import keys
    from swarmq.experiment.config import ExperimentConfig

    base = humaneval_issues()
    copies = max(1, math.ceil(outcomes / (len(base) * len(CONDITIONS) * MAX_REPLICATES)))
    issues = [
        i if k == 0 else replace(i, instance_id=f"{i.instance_id}~{k}") for k in range(copies) for i in base
    ]
    replicates = max(1, math.ceil(outcomes / (len(issues) * len(CONDITIONS))))
    spec = experiment(NAME, model=NULL_MODEL, conditions=CONDITIONS, success="scorer", replicates=replicates)
    cfg = ExperimentConfig.model_validate({**spec, "max_jobs": max(outcomes, 1)})
    model_key = keys.model_key(cfg.model.path)
    rng = random.Random(0)
    started = time.perf_counter()
    with bench.connect() as conn:
        exp_id = conn.execute(
            "INSERT INTO experiments (name, config, config_hash, benchmark, model_key) "
            "VALUES (%s, %s, %s, 'humaneval', %s) RETURNING id",
            (NAME, _json(cfg.canonical_json()), cfg.config_hash(), model_key),
        ).fetchone()[0]  # type: ignore[index]
        issue_ids = []
        for i in issues:
            row = conn.execute(
                "INSERT INTO issues (experiment_id, instance_id, task_type, problem, data) "
                "VALUES (%s, %s, %s, %s, '{}') RETURNING id",
                (exp_id, i.instance_id, i.task_type, i.problem),
            ).fetchone()
            issue_ids.append(row[0])  # type: ignore[index]
        plan = []  # (job id, condition, replicate, position)
        for rep in range(cfg.replicates):
            for pos in range(len(issues)):
                for cond in CONDITIONS:
                    if len(plan) < outcomes:
                        plan.append((len(plan) + 1, cond, rep, pos))

        def job_lines() -> Any:
            for jid, cond, rep, pos in plan:
                yield (
                    f"{jid}\t{exp_id}\t{issue_ids[pos]}\t{cond}\t{rep}\t{issues[pos].instance_id}\t{pos}\t"
                    f"{jid - 1}\tdone\t1\t{model_key}\n"
                )

        def outcome_lines() -> Any:
            sha = "0" * 64
            for jid, cond, rep, pos in plan:
                agents = CONDITIONS[cond]["agents"]
                ok = rng.random() < RATES[cond]
                tokens = rng.randint(8, 128)
                gen = tokens / rng.uniform(20, 60)
                yield (
                    f"{jid}\t{jid}\t    return x  # {rep}\t{'length' if tokens == 128 else 'stop'}\t150\t{tokens}\t"
                    f"{gen:.4f}\t{tokens / gen:.2f}\t{gen + 0.2:.4f}\tbench-{jid % 4}\tnull\t{sha}\tnull\t\t{sha}\t"
                    f"f\t{{}}\t{rng.randrange(agents)}\t{issues[pos].task_type}\t{pos}\t0\t[]\tt\t"
                    f"{'t' if ok else 'f'}\tscorer\t{'passed' if ok else 'failed'}\t{{}}\n"
                )

        # One COPY fires one statement trigger with every row: count them once afterwards instead.
        conn.execute("ALTER TABLE jobs DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE outcomes DISABLE TRIGGER USER")
        _copy(
            conn,
            "jobs",
            "id, experiment_id, issue_id, condition, replicate, instance_id, position, seq, status, "
            "attempts, model_key",
            job_lines(),
        )
        _copy(
            conn,
            "outcomes",
            "id, job_id, completion, finish_reason, prompt_tokens, completion_tokens, "
            "generation_seconds, tokens_per_second, job_seconds, worker, model_name, model_sha256, "
            "llama_cpp_version, prompt, prompt_sha256, chat, sampling, agent_id, task_type, state_version, "
            "staleness, example_ids, update_applied, success, success_rule, score_status, score_detail",
            outcome_lines(),
        )
        conn.execute("ALTER TABLE jobs ENABLE TRIGGER USER")
        conn.execute("ALTER TABLE outcomes ENABLE TRIGGER USER")
        conn.commit()
        copy_s = time.perf_counter() - started
        conn.execute("SELECT swarmq_agg_rebuild(%s)", (exp_id,))
        conn.commit()
        rebuild_s = time.perf_counter() - started - copy_s
    with bench.connect(autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {
        "outcomes": len(plan),
        "issues": len(issues),
        "replicates": cfg.replicates,
        "copy_seconds": copy_s,
        "rebuild_aggregates_seconds": rebuild_s,
        "load_seconds": time.perf_counter() - started,
    }


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj)


def sample(fn: Callable[[], Any], repeats: int, budget: float = BUDGET_S) -> list[float]:
    out: list[float] = []
    while len(out) < repeats and (not out or sum(out) * (1 + 1 / len(out)) <= budget):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def run(ctx: Context) -> FigureResult:
    from swarmq.report import results as res
    from swarmq.report.queries import group_rows

    fig = FigureResult(KEY, TITLE)
    with fresh_database(ctx.endpoints) as bench:
        ctx.say(f"  results: loading {ctx.outcomes:,} outcomes with COPY")
        loaded = load(bench, ctx.outcomes)
        ctx.say(f"    loaded in {loaded['load_seconds']:.0f} s")
        sessions = bench.services.sessions
        with bench.connect() as conn:
            exp_id = conn.execute("SELECT id FROM experiments WHERE name = %s", (NAME,)).fetchone()[0]  # type: ignore[index]

            def sql(q: str, arg: Any) -> Callable[[], Any]:
                return lambda: conn.execute(q, (arg,)).fetchall()

            minimal = sql(
                "SELECT j.condition, count(*), count(*) FILTER (WHERE o.success) FROM jobs j JOIN outcomes o "
                "ON o.job_id = j.id WHERE j.experiment_id = %s GROUP BY j.condition",
                exp_id,
            )
            summary_view = sql("SELECT * FROM v_condition_summary WHERE experiment = %s", NAME)
            agent_view = sql(
                "SELECT condition, agent_id, sum(outcomes), sum(successes)::numeric / "
                "nullif(sum(outcomes), 0) FROM v_agent_summary WHERE experiment = %s "
                "GROUP BY condition, agent_id",
                NAME,
            )
            outcomes_view = sql(
                "SELECT condition, agent_id, count(*), avg(success::int), avg(job_seconds) "
                "FROM v_outcomes WHERE experiment = %s GROUP BY condition, agent_id",
                NAME,
            )

            def call(fn: Callable[[Any], Any]) -> Callable[[], Any]:
                def go() -> Any:
                    with sessions() as session:
                        return fn(session)

                return go

            cfg = conn.execute("SELECT config FROM experiments WHERE id = %s", (exp_id,)).fetchone()[0]  # type: ignore[index]
            queries: dict[str, Callable[[], Any]] = {
                "minimal": minimal,
                "v_condition_summary": summary_view,
                "v_agent_summary": agent_view,
                "v_outcomes": outcomes_view,
                "group_rows": call(lambda s: group_rows(s, exp_id, "condition", cfg)),
                "group_rows_recount": call(lambda s: group_rows(s, exp_id, "condition", cfg, recount=True)),
                "specialization_metrics": call(lambda s: res.specialization_metrics(s, exp_id, cfg)),
                "divergence": call(lambda s: res.divergence(s, exp_id, cfg)),
                "results": call(lambda s: res.results(s, NAME)),
                "results_by_agent": call(lambda s: res.results(s, NAME, by="agent")),
            }
            times: dict[str, list[float]] = {}
            for label, fn in queries.items():
                ctx.say(f"  results: {label}")
                times[label] = sample(fn, 1 if label in BREAKDOWN else ctx.repeats)
                ctx.say(f"    {', '.join(f'{t * 1000:.0f} ms' for t in times[label])}")
    base = "minimal GROUP BY condition: count and successes over jobs ⋈ outcomes"
    n = loaded["outcomes"]

    def row(label: str, key: str, target: bool = True) -> Row:
        ms = [t * 1000 for t in times[key]]
        return Row(
            label,
            "ms",
            [t * 1000 for t in times["minimal"]],
            ms,
            "≤ 200 ms" if target else None,
            check(ms, lambda x: x <= 200) if target else None,
            base,
        )

    fig.rows = [
        row(f"`results(session, name)` over {n:,} outcomes", "results"),
        row('`results(..., by="agent")`', "results_by_agent"),
        row("`SELECT * FROM v_condition_summary WHERE experiment = ...`", "v_condition_summary"),
        row("`v_agent_summary` GROUP BY condition, agent", "v_agent_summary"),
        row("v_outcomes GROUP BY condition, agent (a scan of the per-row view)", "v_outcomes", target=False),
        row("  of results(): group_rows (aggregates)", "group_rows", target=False),
        row(
            "  of results(): group_rows, recount=True (the GROUP BY it replaces)",
            "group_rows_recount",
            target=False,
        ),
        row("  of results(): specialization_metrics (S, F, D)", "specialization_metrics", target=False),
        row("    of which D (divergence: final buffers + null reference)", "divergence", target=False),
    ]
    fig.details = {**loaded, "seconds": times, "budget_s_per_query": BUDGET_S}
    return fig
