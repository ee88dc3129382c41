"""The server-side SQL files (`store/sql`): the live functions at the head are their newest files, the
migrations go down to nothing and up again to the same schema, and the files spell counters and statuses
as the Python definitions do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from swarmq.states import ExperimentState, JobStatus
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


def catalog(url: str) -> dict[str, list[Any]]:
    """Every function, trigger, view, column, index and constraint of the public schema."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    queries = {
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
    try:
        with engine.connect() as conn:
            return {k: sorted(tuple(r) for r in conn.execute(text(q)).all()) for k, q in queries.items()}
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
    for name in ("swarmq_agg_jobs_inserted", "swarmq_agg_rebuild", "swarmq_agg_job_status"):
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
