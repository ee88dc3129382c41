"""The viewer's SQL: plain rows out of jobs, issues and outcomes (no statistics here: those come from
`report.results`, the function `swarmq results` prints)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.errors import UnknownExperiment
from swarmq.view.filters import VERDICT_SQL, JobFilter
from swarmq.view.models import JobRow

JOB_COLUMNS = f"""
    j.id AS job_id, j.condition, j.replicate, j.position, j.sample, j.instance_id, i.task_type, j.status,
    {VERDICT_SQL} AS verdict, o.score_status, o.agent_id AS agent, o.job_seconds AS seconds
"""
FROM = """
    FROM jobs j JOIN issues i ON i.id = j.issue_id LEFT JOIN outcomes o ON o.job_id = j.id
    WHERE j.experiment_id = :e
"""


def experiment(session: Session, name: str) -> dict[str, Any]:
    """Id, benchmark, state and stored configuration of experiment ``name``."""
    row = (
        session.execute(
            text("SELECT id, name, benchmark, state, config FROM experiments WHERE name = :n"), {"n": name}
        )
        .mappings()
        .first()
    )
    if row is None:
        raise UnknownExperiment(f"unknown experiment {name!r}")
    return dict(row)


def jobs(
    session: Session,
    experiment_id: int,
    where: JobFilter,
    *,
    limit: int | None,
    search_text: bool = False,
    first_issues: int | None = None,
) -> tuple[list[JobRow], int]:
    """The jobs the filter matches, in publish order (at most ``limit``), and how many match in all. With
    ``search_text``, each row carries the text the one-file report searches in; with ``first_issues``, only
    the jobs of the first that many issues (by their first job's publish order) are read."""
    condition, params = where.where()
    params = {**params, "e": experiment_id}
    if first_issues is not None:
        condition += (
            " AND j.instance_id IN (SELECT instance_id FROM jobs WHERE experiment_id = :e "
            "GROUP BY instance_id ORDER BY min(seq) LIMIT :first_issues)"
        )
        params["first_issues"] = first_issues
    total = int(session.execute(text(f"SELECT count(*) {FROM} AND {condition}"), params).scalar_one())
    extra = (
        ", concat_ws(' ', j.instance_id, o.completion, j.error, o.error, o.score_detail::text) AS search"
        if search_text
        else ""
    )
    sql = (
        f"SELECT {JOB_COLUMNS}, split_part(ltrim(coalesce(o.completion, ''), E' \\n'), E'\\n', 1) AS snippet"
        f"{extra} {FROM} AND {condition} ORDER BY j.seq, j.id"
        + (" LIMIT :limit" if limit is not None else "")
    )
    if limit is not None:
        params["limit"] = limit
    rows = [
        JobRow(
            job_id=int(r["job_id"]),
            condition=str(r["condition"]),
            replicate=int(r["replicate"]),
            position=int(r["position"]),
            sample=int(r["sample"]),
            instance_id=str(r["instance_id"]),
            task_type=str(r["task_type"]),
            status=str(r["status"]),
            verdict=str(r["verdict"]),
            score_status=r["score_status"],
            agent=r["agent"],
            seconds=r["seconds"],
            snippet=str(r["snippet"])[:120],
            search_text=str(r.get("search") or "").lower(),
        )
        for r in session.execute(text(sql), params).mappings()
    ]
    return rows, total


def filter_values(session: Session, experiment_id: int) -> dict[str, Any]:
    """The distinct conditions, replicates, agents, task types, statuses and samples of the experiment's jobs,
    and how many issues it has (``issues``)."""
    sql = f"""
        SELECT array_agg(DISTINCT j.condition) AS conditions, array_agg(DISTINCT j.replicate) AS replicates,
               array_agg(DISTINCT o.agent_id) FILTER (WHERE o.agent_id IS NOT NULL) AS agents,
               array_agg(DISTINCT i.task_type) AS task_types, array_agg(DISTINCT j.status) AS statuses,
               array_agg(DISTINCT j.sample) AS samples,
               count(DISTINCT j.instance_id) AS issues
        {FROM}
    """
    row = session.execute(text(sql), {"e": experiment_id}).mappings().one()
    return {k: v if k == "issues" else sorted(v or []) for k, v in row.items()}


def job(session: Session, job_id: int) -> dict[str, Any]:
    """One job with its issue, its experiment's name and configuration, and its outcome's columns (prefixed
    ``o_``; None without an outcome)."""
    row = (
        session.execute(
            text(
                f"""
                SELECT j.*, i.task_type, i.problem, e.name AS experiment, e.config AS config,
                       to_jsonb(o) AS outcome, {VERDICT_SQL} AS verdict
                FROM jobs j JOIN issues i ON i.id = j.issue_id JOIN experiments e ON e.id = j.experiment_id
                LEFT JOIN outcomes o ON o.job_id = j.id
                WHERE j.id = :j
                """
            ),
            {"j": job_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise UnknownExperiment(f"no job with id {job_id}")
    return dict(row)
