"""Page builders: a session and a name (or a job id) in, a typed view model out (`models`).

The experiment page's numbers are `report.results.results`, the very function `swarmq results` prints,
shown field by field whatever fields it returns; progress is `report.progress.progress`, as `swarmq status`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from swarmq.experiment.config import ExperimentConfig
from swarmq.report.progress import experiments_json, progress
from swarmq.report.queries import curve_rows
from swarmq.report.results import results, samples_of
from swarmq.swarm.state import Stream
from swarmq.view import charts, prompt, reads
from swarmq.view.filters import LIMIT, JobFilter
from swarmq.view.models import (
    VERDICTS,
    Cell,
    ExperimentPage,
    ExperimentSummary,
    FilterOptions,
    JobPage,
    JobRow,
    Matrix,
    MatrixRow,
    Route,
    Table,
)

COUNTS = ("jobs", "done", "running", "queued", "failed", "paused", "cancelled", "successes", "scoring_errors")


def experiments(session: Session) -> list[ExperimentSummary]:
    """Every experiment, newest first, with its job counts (`swarmq experiments`' rows)."""
    rows = experiments_json(session)["experiments"]
    return [
        ExperimentSummary(
            name=str(r["name"]),
            benchmark=str(r.get("benchmark", "")),
            state=str(r.get("state", "")),
            complete=bool(r.get("complete")),
            created_at=str(r.get("created_at", "")),
            counts={k: int(r[k]) for k in COUNTS if k in r and r[k] is not None},
        )
        for r in reversed(rows)
    ]


def fmt(value: Any) -> str:
    """How a results value reads on a page: floats to 3 decimals, intervals as [low, high], None as -."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def cell(value: Any) -> Cell:
    return Cell(fmt(value), json.dumps(value, default=str))


def tables_of(data: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[Table]]:
    """The results as facts (scalar fields) and tables: a list of rows becomes a table with the union of
    their fields as columns; a mapping of rows becomes one with its keys as the first column."""
    facts, tables = [], []
    for key, value in data.items():
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for row in value for k in row))
            tables.append(Table(key, columns, [[cell(row.get(c)) for c in columns] for row in value]))
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            columns = list(dict.fromkeys(k for row in value.values() for k in row))
            rows = [[cell(name), *(cell(row.get(c)) for c in columns)] for name, row in value.items()]
            tables.append(Table(key, ["condition", *columns], rows))
        elif isinstance(value, dict | list):
            if value:
                facts.append((key, json.dumps(value, default=str)))
        else:
            facts.append((key, fmt(value)))
    return facts, tables


MATRIX_ISSUES = 300
"""Issues the outcome matrix shows (the first published); the job list and its filters reach the rest."""


def matrix(rows: list[JobRow], issues: int = MATRIX_ISSUES, total: int | None = None) -> Matrix:
    """Issue × (condition, replicate) of the given jobs; the first ``issues`` issues, in the order their
    first job was published, of ``total`` (default: the issues of ``rows``). A cell is the issue's sample 0
    in that stream, as the results count it; where some cell has several samples, ``passed`` says how many
    of each cell's judged samples succeeded."""
    columns = sorted({(r.condition, r.replicate) for r in rows})
    index = {c: i for i, c in enumerate(columns)}
    by_issue: dict[str, MatrixRow] = {}
    tally: dict[tuple[str, int], list[int]] = {}  # (issue, column) → [successes, judged]
    several = any(r.sample > 0 for r in rows)
    for r in rows:
        line = by_issue.get(r.instance_id)
        if line is None:
            if len(by_issue) >= issues:
                continue
            line = by_issue[r.instance_id] = MatrixRow(
                r.instance_id,
                r.task_type,
                [None] * len(columns),
                [""] * len(columns) if several else [],
            )
        column = index[(r.condition, r.replicate)]
        if r.sample == 0:
            line.cells[column] = r
        if several and r.verdict in ("success", "failure"):
            t = tally.setdefault((r.instance_id, column), [0, 0])
            t[0] += r.verdict == "success"
            t[1] += 1
    for (issue, column), (successes, judged) in tally.items():
        by_issue[issue].passed[column] = f"{successes}/{judged}"
    return Matrix(
        columns, list(by_issue.values()), len({r.instance_id for r in rows}) if total is None else total
    )


def pass_rows(pass_at_k: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`results`' pass@k per condition as flat rows (samples, then pass@k and its interval for each k), the
    form `tables_of` lays out as a table."""
    return {
        cond: {
            "samples": r["samples"],
            **{
                f"pass@{k}{suffix}": v[key]
                for k, v in r["pass"].items()
                for suffix, key in (("", "value"), (" ci95", "ci95"))
            },
        }
        for cond, r in pass_at_k.items()
    }


def experiment_page(
    session: Session, name: str, where: JobFilter | None = None, *, every_job: bool = False
) -> ExperimentPage:
    """The experiment's page: progress, results, charts, the outcome matrix and the filtered job list (at
    most `filters.LIMIT` jobs, or all with ``every_job``: the one-file report filters in the browser)."""
    where = where or JobFilter()
    exp = reads.experiment(session, name)
    exp_id, config = int(exp["id"]), dict(exp["config"])
    status = progress(session, name)
    data = results(session, name)
    facts, tables = tables_of({**data, "pass_at_k": pass_rows(data.get("pass_at_k") or {})})
    rows = curve_rows(session, exp_id)
    agents = {c: int(v.get("agents", 1)) for c, v in config.get("conditions", {}).items()}
    maps = charts.heatmaps(rows, agents)
    values = reads.filter_values(session, exp_id)
    if every_job:
        listed, matching = reads.jobs(session, exp_id, JobFilter(), limit=None, search_text=True)
        in_matrix = listed
    else:
        listed, matching = reads.jobs(session, exp_id, where, limit=LIMIT)
        in_matrix, _ = reads.jobs(session, exp_id, JobFilter(), limit=None, first_issues=MATRIX_ISSUES)
    return ExperimentPage(
        name=name,
        benchmark=str(exp["benchmark"]),
        state=str(exp["state"]),
        complete=bool(status["complete"]),
        progress={k: int(v) for k, v in status["total"].items() if k in COUNTS},
        facts=facts,
        tables=tables,
        curves_svg=charts.curves_svg(charts.curves(rows)),
        heatmaps_svg=[(c, charts.heatmap_svg(*m)) for c, m in maps.items()],
        matrix=matrix(in_matrix, total=int(values["issues"])),
        jobs=listed,
        matching=matching,
        filters=where,
        options=FilterOptions(
            conditions=values["conditions"],
            replicates=values["replicates"],
            agents=values["agents"],
            task_types=values["task_types"],
            verdicts=list(VERDICTS),
            statuses=values["statuses"],
            samples=values["samples"],
        ),
        samples=samples_of(config),
    )


def _when(t: datetime | None) -> str:
    return "-" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _seconds(v: Any) -> str:
    return "-" if v is None else f"{float(v):.3f} s"


def job_page(
    session: Session, job_id: int, histories: dict[tuple[str, int], prompt.StreamHistory] | None = None
) -> JobPage:
    """Everything about one job: identity, model and sampling, timings and tokens, errors, the verdict and
    the scorer's detail, routing, the agent's buffer at that moment, the prompt with its examples marked,
    the completion, and the command that replays it. ``histories`` keeps each stream's history between
    calls (the one-file report renders every job of a stream from one read)."""
    row = reads.job(session, job_id)
    o: dict[str, Any] | None = row["outcome"]
    config = ExperimentConfig.stored(dict(row["config"]))
    cond = config.conditions.get(str(row["condition"]))
    sampling = dict((o or {}).get("sampling") or {})
    sample, samples = int(row["sample"]), config.generation.samples
    job_facts = [
        ("experiment", str(row["experiment"])),
        ("condition", str(row["condition"])),
        ("replicate", str(row["replicate"])),
        ("position", str(row["position"])),
        *([("sample", f"{sample} of {samples}")] if samples > 1 or sample else []),
        ("issue", str(row["instance_id"])),
        ("task type", str(row["task_type"])),
        ("status", str(row["status"])),
        ("attempts", str(row["attempts"])),
        ("worker", str((o or {}).get("worker") or row.get("lease_owner") or "-")),
        ("gpu", fmt((o or {}).get("gpu_index"))),
    ]
    model_facts = [
        ("model", str((o or {}).get("model_name") or config.model_for(str(row["condition"])).label)),
        ("model sha256", str((o or {}).get("model_sha256") or "-")),
        ("llama-cpp-python", str((o or {}).get("llama_cpp_version") or "-")),
        ("seed", fmt(sampling.get("seed"))),
        ("temperature", fmt(sampling.get("temperature"))),
        ("top_p", fmt(sampling.get("top_p"))),
        ("max_tokens", fmt(sampling.get("max_tokens"))),
        ("slots", fmt((o or {}).get("slots"))),
        ("mean batch", fmt((o or {}).get("mean_batch_size"))),
        ("chat", fmt((o or {}).get("chat"))),
    ]
    timing_facts = [
        ("created (UTC)", _when(row["created_at"])),
        ("started (UTC)", _when(row["started_at"])),
        ("finished (UTC)", _when(row["finished_at"])),
        ("job", _seconds((o or {}).get("job_seconds"))),
        ("model load", _seconds((o or {}).get("load_seconds"))),
        ("prompt", _seconds((o or {}).get("prompt_seconds"))),
        ("generation", _seconds((o or {}).get("generation_seconds"))),
        ("scoring", _seconds((o or {}).get("scoring_seconds"))),
        ("prompt tokens", fmt((o or {}).get("prompt_tokens"))),
        (
            "cached / evaluated",
            f"{fmt((o or {}).get('prompt_cached_tokens'))} / {fmt((o or {}).get('prompt_eval_tokens'))}",
        ),
        ("completion tokens", fmt((o or {}).get("completion_tokens"))),
        ("tokens/s", fmt((o or {}).get("tokens_per_second"))),
        ("finish", str((o or {}).get("finish_reason") or "-")),
    ]
    job_error, outcome_error = row["error"], (o or {}).get("error")
    errors = [  # a job that failed in its generation records the same reason twice: shown once
        (where, str(msg))
        for where, msg in (("job", job_error), ("outcome", outcome_error))
        if msg and not (where == "outcome" and msg == job_error)
    ]
    score = [
        ("verdict", str(row["verdict"])),
        ("success", fmt((o or {}).get("success"))),
        ("rule", str((o or {}).get("success_rule") or config.effective_rule())),
        ("scorer status", str((o or {}).get("score_status") or "-")),
        ("resolved", fmt((o or {}).get("resolved"))),
    ]
    detail = [
        (k, v if isinstance(v, str) else json.dumps(v, indent=1, default=str))
        for k, v in dict((o or {}).get("score_detail") or {}).items()
    ]
    agent = (o or {}).get("agent_id")
    routing = dict((o or {}).get("routing") or {})
    probs, scores = routing.get("probabilities") or [], routing.get("scores") or []
    n = max(len(probs), len(scores), cond.agents if cond else 0)
    routes = [
        Route(
            a,
            float(probs[a]) if a < len(probs) else None,
            float(scores[a]) if a < len(scores) else None,
            a == agent,
        )
        for a in (range(n) if agent is not None else ())  # a failure outcome was never routed
    ]
    shown = [str(x) for x in (o or {}).get("example_ids") or []]
    buffer_ids: list[str] = []
    examples = []
    if o and agent is not None and cond is not None:
        stream = Stream(
            int(row["experiment_id"]), str(row["experiment"]), str(row["condition"]), int(row["replicate"])
        )
        histories = {} if histories is None else histories
        key = (stream.condition, stream.replicate)
        if key not in histories:
            histories[key] = prompt.StreamHistory.read(session, stream, config)
        history = histories[key]
        buffer_ids = [e.id for e in history.buffer_at(int(agent), int(o.get("state_version") or 0))]
        made = history.examples()
        examples = [made[i] for i in shown if i in made]
    text = str((o or {}).get("prompt") or "")
    chat = bool((o or {}).get("chat"))
    messages = prompt.chat_messages(text, examples) if chat else None
    return JobPage(
        job_id=int(row["id"]),
        experiment=str(row["experiment"]),
        condition=str(row["condition"]),
        replicate=int(row["replicate"]),
        position=int(row["position"]),
        instance_id=str(row["instance_id"]),
        task_type=str(row["task_type"]),
        status=str(row["status"]),
        verdict=str(row["verdict"]),
        facts=[("job", job_facts), ("model and sampling", model_facts), ("timings and tokens", timing_facts)],
        errors=errors,
        score=score,
        score_detail=detail,
        router=cond.router if cond else None,
        routes=routes,
        buffer_ids=buffer_ids,
        shown_ids=shown,
        chat=messages is not None,
        prompt=[] if messages is not None else prompt.mark(text, examples),
        messages=messages or [],
        completion=str((o or {}).get("completion") or ""),
        has_outcome=o is not None,
        replay_command=f"swarmq replay {int(row['id'])}" if o and text else "",
        sample=sample,
        samples=samples,
    )
