"""The migrations build exactly the schema the ORM declares (no drift between schema.py and migrations/)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from swarmq.store import db
from swarmq.store.schema import Base

pytestmark = pytest.mark.services


def test_migrations_match_the_models(svc: Any) -> None:
    assert db.current_revision(svc.engine) == db.head_revision(svc.engine)
    with svc.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_views_exist(svc: Any) -> None:
    from sqlalchemy import text

    with svc.engine.connect() as conn:
        views = set(conn.execute(text("SELECT viewname FROM pg_views WHERE schemaname = 'public'")).scalars())
    assert {"v_outcomes", "v_condition_summary"} <= views
