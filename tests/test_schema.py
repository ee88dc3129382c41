"""The migrations build exactly the schema the ORM declares (no drift between schema.py and migrations/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from swarmq.errors import SchemaOutOfDate
from swarmq.store import db
from swarmq.store.schema import Base
from tests.conftest import fresh_database


@pytest.mark.services
def test_migrations_match_the_models(svc: Any) -> None:
    assert db.current_revision(svc.engine) == db.head_revision(svc.engine)
    with svc.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.mark.services
def test_views_exist(svc: Any) -> None:
    from sqlalchemy import text

    with svc.engine.connect() as conn:
        views = set(conn.execute(text("SELECT viewname FROM pg_views WHERE schemaname = 'public'")).scalars())
    assert {"v_outcomes", "v_condition_summary"} <= views


def test_script_head_is_alembics_head() -> None:
    """The schema check reads the head from the scripts without Alembic; it must be the head Alembic computes,
    or a schema one migration behind would pass the check."""
    engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none"
    )  # never connects: Alembic reads files
    assert db.script_head() == db.head_revision(engine) is not None


def script(directory: Path, revision: str, down: str, annotated: bool = False) -> None:
    """A migration script as Alembic writes them, with a function that assigns a local ``revision`` too."""
    parent = f"down_revision: str | None = {down}" if annotated else f"down_revision = {down}"
    body = "def upgrade() -> None:\n    revision = 'not this one'\n"
    (directory / f"{revision}_x.py").write_text(
        f'"""A migration."""\n\nrevision = "{revision}"\n{parent}\n\n\n{body}'
    )


def test_script_head_follows_the_chain_and_leaves_the_rest_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path)

    def head() -> str | None:
        db.script_head.cache_clear()
        return db.script_head()

    try:
        script(versions, "a", "None")
        script(versions, "c", '"b"')
        script(versions, "b", '"a"', annotated=True)
        assert head() == "c"
        script(versions, "d", '"b"')  # a second head: Alembic decides
        assert head() is None
        script(versions, "e", '("c", "d")')  # a merge point
        assert head() is None
    finally:
        db.script_head.cache_clear()


@pytest.mark.services
def test_check_schema_passes_only_at_head(pg_admin_url: str) -> None:
    """The cheap check passes a schema at the head; every other state still fails with Alembic's names for it."""
    head = db.script_head()
    with fresh_database(pg_admin_url, "swarmq_test_check") as url:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with pytest.raises(SchemaOutOfDate, match="database schema is empty"):
                db.check_schema(engine)
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
                conn.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
            with pytest.raises(SchemaOutOfDate, match=f"database schema is at 0001, head is {head}"):
                db.check_schema(engine)
            with engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = :h"), {"h": head})
            db.check_schema(engine)
        finally:
            engine.dispose()
