"""Alembic environment: migrations run on one connection, under an advisory lock so that two processes
upgrading at once (two workers, a producer) cannot interleave."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

from swarmq import keys
from swarmq.store.schema import Base

config = context.config
target_metadata = Base.metadata
MIGRATION_LOCK = keys.MIGRATION_LOCK


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from swarmq.settings import get_settings
    from swarmq.store.db import database_url

    return database_url(get_settings())


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
    try:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        connection.commit()


run_migrations_online()
