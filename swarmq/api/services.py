"""Settings, services and the schema: what every other API call connects through, and the commands that
run a worker or manage the embedded servers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from swarmq.settings import Settings
    from swarmq.store.services import Services
    from swarmq.worker.main import WorkerOptions


def get_settings() -> Settings:
    """The one settings object (`swarmq.settings`), imported on first use: pydantic-settings costs a
    noticeable part of a command's start, and `swarmq --help` needs none of it."""
    from swarmq.settings import get_settings as settings

    return settings()


def connect(*, check_schema: bool = True, settings: Settings | None = None) -> Services:
    """Postgres and Redis clients from the settings (embedded servers when no URL is set)."""
    from swarmq.store.services import connect as make

    return make(settings or get_settings(), check_schema=check_schema)


def database() -> Engine:
    """Postgres only: schema commands do not need Redis."""
    from swarmq.store import db

    return db.make_engine(db.database_url(get_settings()))


def db_upgrade() -> tuple[str | None, str | None]:
    """Apply migrations up to head; (revision before, revision after)."""
    from swarmq.store import db

    return db.upgrade(database())


def db_status() -> tuple[str | None, str | None]:
    """(current revision, head revision) of the schema."""
    from swarmq.store import db

    engine = database()
    return db.current_revision(engine), db.head_revision(engine)


def rebuild_aggregates(experiment: str | None = None) -> list[str]:
    """Recount the results aggregates of one experiment (None: every one) from its jobs and outcomes; returns
    the names recounted. Writes to jobs and outcomes wait while it runs."""
    from sqlalchemy import text

    from swarmq.store import aggregates
    from swarmq.store.experiments import experiment_row

    with connect(check_schema=True).sessions() as session:
        if experiment is None:
            rows = [
                (int(i), str(n))
                for i, n in session.execute(text("SELECT id, name FROM experiments ORDER BY id"))
            ]
        else:
            rows = [(experiment_row(session, experiment)[0], experiment)]
        for exp_id, _ in rows:
            aggregates.rebuild(session, exp_id)
        session.commit()
    return [name for _, name in rows]


def service_urls() -> tuple[str, str]:
    """The Postgres and Redis URLs in use (starting the embedded servers when no URL is set). The Postgres
    URL is in libpq's form (``postgresql://``), which psql takes as it is and swarmq reads too; SQLAlchemy's
    ``postgresql+psycopg://`` form is refused by psql."""
    from swarmq.store.db import database_url, libpq_url
    from swarmq.store.services import redis_url

    settings = get_settings()
    return libpq_url(database_url(settings)), redis_url(settings)


def stop_services() -> Path:
    """Stop the embedded servers; returns where they live."""
    from swarmq.store import embedded

    home = get_settings().home
    embedded.stop_all(home)
    return home


def run_worker(opts: WorkerOptions) -> int:
    """Run one worker until it is stopped (or, with ``burst``, until its model has no job left)."""
    from swarmq.worker.main import run_worker as run

    return run(opts, get_settings())
