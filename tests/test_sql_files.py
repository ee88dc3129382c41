"""The server-side SQL files (`store/sql`): the live functions at the head are their newest files, the
migrations go down to nothing and up again to the same schema, and the files spell counters and statuses
as the Python definitions do."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from swarmq.states import FINISHED, OPEN, ExperimentState, JobStatus, sql_list
from swarmq.store import counters
from swarmq.store.sql import SQL_DIR
from tests.conftest import fresh_database

FUNCTION = re.compile(
    r"CREATE OR REPLACE FUNCTION (?P<name>\w+)\((?P<head>.*?)\$(?P<tag>\w*)\$(?P<body>.*?)\$(?P=tag)\$", re.S
)


def newest_files() -> dict[str, Path]:
    """Each object's newest file: the one the head revision loaded."""
    out: dict[str, Path] = {}
    for folder in sorted(p for p in SQL_DIR.iterdir() if p.is_dir()):
        for path in folder.glob("*.sql"):
            out[path.stem] = path
    return out


def head_functions() -> dict[str, tuple[str, str]]:
    """name -> (normalised header, body) of every function in the newest files."""
    out = {}
    for path in newest_files().values():
        for m in FUNCTION.finditer(path.read_text()):
            out[m["name"]] = (normalise(f"{m['name']}({m['head']}"), m["body"])
    return out


def normalise(header: str) -> str:
    """A function's header, as ``pg_get_functiondef`` prints it or a file writes it: whitespace runs are one
    space, the schema and the dollar-quote tag are left out. The body is compared as it is, byte for byte."""
    return re.sub(r"\s+", " ", header.replace("public.", "")).strip()


@pytest.mark.services
def test_every_live_function_is_its_newest_file(svc: Any) -> None:
    with svc.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.proname, pg_get_functiondef(p.oid), p.prosrc FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public' AND p.proname LIKE 'swarmq\\_%'"
            )
        ).all()
    files = head_functions()
    assert sorted(r[0] for r in rows) == sorted(files)
    for name, definition, body in rows:
        head = definition.split("$function$", 1)[0]
        assert normalise(head.split("FUNCTION ", 1)[1]) == files[name][0], name
        assert body == files[name][1], f"{name}: the live body differs from {newest_files()[name]}"


@pytest.mark.services
def test_the_head_is_its_newest_files(svc: Any) -> None:
    """Every newest file is idempotent at the head: running it again (in a transaction, rolled back) changes
    no function, trigger or view."""
    url = svc.engine.url.render_as_string(hide_password=False)
    before = catalog(url)
    with svc.engine.connect() as conn:
        for path in newest_files().values():
            if path.parent.name != "0008" or path.stem != "agg_tables":
                conn.exec_driver_sql(path.read_text())
        after = catalog_of(conn)
        conn.rollback()
    assert {k: after[k] for k in ("functions", "triggers", "views")} == {
        k: before[k] for k in ("functions", "triggers", "views")
    }


CATALOG = {
    "functions": "SELECT proname, pg_get_functiondef(p.oid) FROM pg_proc p "
    "WHERE pronamespace = 'public'::regnamespace",
    "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'",
    "columns": "SELECT table_name, column_name, data_type, column_default, is_nullable "
    "FROM information_schema.columns WHERE table_schema = 'public'",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE connamespace = 'public'::regnamespace",
}


def catalog_of(conn: Any) -> dict[str, list[Any]]:
    return {k: sorted(tuple(r) for r in conn.execute(text(q)).all()) for k, q in CATALOG.items()}


def catalog(url: str) -> dict[str, list[Any]]:
    """Every function, trigger, view, column, index and constraint of the public schema."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return catalog_of(conn)
    finally:
        engine.dispose()


@pytest.mark.services
def test_downgrade_to_base_and_upgrade_to_head(pg_admin_url: str) -> None:
    """Every downgrade runs, leaves nothing behind, and the upgrade after it builds the same schema."""
    from alembic import command

    from swarmq.store import db

    with fresh_database(pg_admin_url, "swarmq_test_downgrade") as url:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            config = db._alembic_config(engine)
            command.upgrade(config, "head")
            head = catalog(url)
            assert head["functions"] and head["triggers"]
            command.downgrade(config, "base")
            empty = catalog(url)
            left = {
                name: [r for r in rows if not r[0].startswith("alembic_version")]
                for name, rows in empty.items()
            }
            assert left == {name: [] for name in empty}, left
            command.upgrade(config, "head")
            assert catalog(url) == head
        finally:
            engine.dispose()


def test_sql_lines_are_short() -> None:
    long = [
        f"{p.relative_to(SQL_DIR)}:{i}"
        for p in SQL_DIR.glob("*/*.sql")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if len(line) > 100
    ]
    assert long == []


def test_status_literals_are_states() -> None:
    """Every status and state a newest file compares with is a `JobStatus` or `ExperimentState` value."""
    found: dict[str, set[str]] = {"status": set(), "state": set()}
    for path in newest_files().values():
        sql = path.read_text()
        for column, literals in re.findall(r"\b(status|state)\s*(?:=|<>|IN)\s*\(?((?:'\w+'(?:,\s*)?)+)", sql):
            found[column].update(re.findall(r"'(\w+)'", literals))
    assert found["status"] and found["state"]
    assert found["status"] <= {s.value for s in JobStatus}
    assert found["state"] <= {s.value for s in ExperimentState}


def test_the_sql_counts_by_the_counters_definitions() -> None:
    """Each counter the SQL computes is written as `counters` defines it, and every writer of ``agg_cells``
    names its counters in the table's order."""
    files = newest_files()
    outcomes = files["swarmq_agg_outcomes"].read_text()
    for c in counters.CELL_COUNTERS:
        if c.source == "matched":
            continue
        factor = "m.sign" if c.source == "job" else "m.own"
        assert f"{factor} * {c.sql} AS {c.name}" in re.sub(r"\s+", " ", outcomes), c.name
    rebuild = re.sub(r"\s+", " ", files["swarmq_agg_rebuild"].read_text())
    for c in counters.CELL_COUNTERS:
        if c.source != "matched":
            assert f" {c.sql} AS {c.name}," in rebuild, c.name
    for name in ("swarmq_agg_jobs_inserted", "swarmq_agg_job_status"):
        sql = re.sub(r"\s+", " ", files[name].read_text())
        for c in counters.JOB_COUNTERS:
            assert re.search(rf"(j\.sign \* )?{re.escape(c.sql)} AS {c.name}\b", sql), (name, c.name)
    for view in ("v_condition_summary", "v_agent_summary"):
        sql = re.sub(r"\s+", " ", files[view].read_text())
        used = re.findall(r"\bsum\(c\.(\w+)\)", sql)
        for c in counters.CELL_COUNTERS:
            if c.name in used and c.source == "outcome":
                assert f"{c.sql} AS {c.name}" in sql, (view, c.name)
    names = [c.name for c in counters.CELL_COUNTERS]
    for path in files.values():
        for columns in re.findall(
            r"INSERT INTO agg_cells(?: AS t)? \((.*?)\)", re.sub(r"\s+", " ", path.read_text())
        ):
            listed = [c.strip() for c in columns.split(",")][5:]
            assert listed == names[: len(listed)], path.name


def test_the_scoring_error_status_is_the_benchmarks_unjudged() -> None:
    from swarmq.benchmarks.base import UNJUDGED

    assert counters.SCORING_ERROR_STATUS == UNJUDGED


def cte(sql: str, name: str) -> str:
    """The text of CTE ``name`` (from ``name AS (`` to the line that closes it), whitespace runs as one."""
    start = sql.index(f"    {name} AS (")
    end = sql.index("\n    )", start)
    return re.sub(r"\s+", " ", sql[start:end])


def test_the_rebuild_computes_pairs_as_the_fold() -> None:
    """The matched rule (the pair state and its terms) and the paired comparisons are the same SQL in the
    maintained path and in the recount."""
    files = newest_files()
    fold, rebuild = files["swarmq_agg_outcomes"].read_text(), files["swarmq_agg_rebuild"].read_text()
    assert cte(fold, "after").replace("FROM unnest(before) a", "FROM touched a") == cte(rebuild, "after")
    for name in ("terms", "c3"):
        assert cte(fold, name) == cte(rebuild, name), name
    tail = "INSERT INTO agg_issue_pairs"
    assert fold[fold.index(tail) :] == rebuild[rebuild.index(tail) :]


def test_the_status_sets_are_the_named_sets() -> None:
    """The job trigger counts changes into and out of the finished statuses; the release's floor is the
    lowest open position."""
    files = newest_files()
    assert f"NEW.status IN {sql_list(FINISHED)}" in files["swarmq_agg_job_status"].read_text()
    assert f"j.status IN {sql_list(OPEN)}" in files["swarmq_release"].read_text()


PINNED = {
    "0001/v_outcomes.sql": "529b642d04e8bee7",
    "0003/v_condition_summary.sql": "df8d2ff8b31d86fe",
    "0008/agg_tables.sql": "4356836f406f96cd",
    "0008/swarmq_agg_bucket.sql": "9f4dd4f259a00c84",
    "0008/swarmq_agg_conditions.sql": "93cdb46142f7f434",
    "0008/swarmq_agg_full.sql": "52a82441813fb821",
    "0008/swarmq_agg_job_status.sql": "a7155a74c57e0984",
    "0008/swarmq_agg_jobs_deleted.sql": "35d7918c279130d9",
    "0008/swarmq_agg_jobs_inserted.sql": "3d6b78e0056f9e8a",
    "0008/swarmq_agg_outcomes.sql": "2bc3c7d7e92ae1d1",
    "0008/swarmq_agg_outcomes_written.sql": "cc48a75216e6e4d1",
    "0008/swarmq_agg_rebuild.sql": "dbdb782be589683c",
    "0008/swarmq_agg_truncated.sql": "1eb9f3ae4acc54dd",
    "0008/v_agent_summary.sql": "3eb476705b711e33",
    "0008/v_condition_summary.sql": "4a5c077d451e52cf",
    "0009/swarmq_close.sql": "b5ff1635c9935136",
    "0009/swarmq_release.sql": "015b8600f755b2f9",
    "0010/swarmq_agg_fold.sql": "4d344bf0c236dbe3",
    "0010/swarmq_agg_job_status.sql": "df60bd9189751777",
    "0010/swarmq_agg_outcomes.sql": "04cea9bb9ce6db7f",
    "0010/swarmq_agg_outcomes_written.sql": "d01552316cb945d6",
    "0010/swarmq_agg_rebuild.sql": "e4c5658e450c8e61",
    "0010/v_agent_summary.sql": "2ff619a3c800219a",
    "0010/v_condition_summary.sql": "23daab28a855678d",
    "0012/swarmq_agg_bucket.sql": "92d0ec5d4bafc2d1",
    "0012/swarmq_agg_conditions.sql": "0fa858c2336ab5bd",
    "0012/swarmq_agg_fold.sql": "5e702e0c0c7946f8",
    "0012/swarmq_agg_full.sql": "7d345f6fad8956cb",
    "0012/swarmq_agg_job_status.sql": "9c23d6cdaa3c6757",
    "0012/swarmq_agg_jobs_deleted.sql": "5cb727ed7e9dc464",
    "0012/swarmq_agg_jobs_inserted.sql": "f980e2de943cac1a",
    "0012/swarmq_agg_outcomes.sql": "62268ce69d6f8361",
    "0012/swarmq_agg_outcomes_written.sql": "4572bb3438058baf",
    "0012/swarmq_agg_rebuild.sql": "0967786fb744e675",
    "0012/swarmq_agg_truncated.sql": "e3a852c928ce309e",
    "0012/swarmq_close.sql": "10597cb502a4b524",
    "0012/swarmq_release.sql": "ec4d05efbbb4f5dd",
    "0012/v_agent_summary.sql": "f5a69dadd984b9aa",
    "0012/v_condition_summary.sql": "c9cc61577aa280dd",
    "0013/swarmq_agg_job_status.sql": "9081f6814fa5898b",
    "0013/swarmq_agg_jobs_inserted.sql": "74aeadf08d59e8f0",
    "0013/swarmq_agg_outcomes.sql": "3b2a7b77d49b3e34",
    "0013/swarmq_agg_rebuild.sql": "e2389b0c2e1c0c38",
    "0013/swarmq_release.sql": "661bc7c1db719599",
    "0013/v_agent_summary.sql": "86c814dc715be69a",
    "0013/v_condition_summary.sql": "a35023d1a0eb987c",
    "0013/v_outcomes.sql": "64d0c9d383f85d1d",
}
"""A prefix of each file's sha256. A migration that has run somewhere cannot be run again there, so a file it
loads must never change: to change an object, copy its file into a new revision's folder. (While the head
revision is unreleased, its own entries may be updated with it.)"""


def test_pinned_files_do_not_change() -> None:
    now = {
        str(p.relative_to(SQL_DIR)): hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(SQL_DIR.glob("*/*.sql"))
    }
    assert now == PINNED


def test_every_counting_file_counts_sample_zero() -> None:
    """With ``generation.samples``, the aggregates and their views count each cell's sample 0 (`counters.PRIMARY`,
    as the recount does): every newest file that counts jobs or outcomes says so, the job trigger on the row it
    fires for."""
    files = newest_files()
    counting = [
        "swarmq_agg_outcomes",
        "swarmq_agg_rebuild",
        "swarmq_agg_jobs_inserted",
        "v_condition_summary",
        "v_agent_summary",
    ]
    for name in counting:
        assert counters.PRIMARY in files[name].read_text(), name
    assert "WHEN (NEW.sample = 0 AND" in files["swarmq_agg_job_status"].read_text()
    # The recount's `after` pairs one job per condition: the sample-0 join, in the fold and the rebuild alike.
    for name in ("swarmq_agg_outcomes", "swarmq_agg_rebuild"):
        assert (
            "AND j.instance_id = a.instance_id\n                        AND j.sample = 0"
            in files[name].read_text()
        )
