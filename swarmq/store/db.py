"""Postgres connection: engine and session factory, the schema check, and migrations.

Clients are created here once and injected into whatever needs them (producer, worker, results).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from swarmq.errors import ConfigError, SchemaOutOfDate, ServiceUnavailable, first_line, mask_url
from swarmq.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
"""Alembic's default version table, which `migrations/env.py` keeps."""


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on first use, when `embedded.embedded_home`
    allows)."""
    from swarmq.store.embedded import embedded_home, postgres_url

    home = embedded_home(settings)
    if home is not None:
        return postgres_url(home)
    url = settings.database_url
    assert url is not None  # embedded_home returns None only when both URLs are set
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL in the form libpq (psql, pg_dump) accepts: the driver suffix dropped."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}" if sep else url


def make_engine(url: str) -> Engine:
    # No pre-ping: it costs a round trip per checkout, several per job. A connection that died (Postgres
    # restarted) fails its statement, SQLAlchemy discards it, and the worker's retry gets a fresh one.
    try:
        engine = create_engine(url, pool_size=2, max_overflow=4, connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        missing = _missing_database(url, reason)
        raise ServiceUnavailable(missing or f"cannot reach Postgres at {mask_url(url)}: {reason}") from None
    except (DBAPIError, ArgumentError, ValueError) as exc:
        # The driver or SQLAlchemy refused the URL itself (an unknown ``?option``, a bad value): bad input.
        reason = first_line(exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc)
        raise ConfigError(f"SWARMQ_DATABASE_URL: {mask_url(url)}: {reason}") from None
    return engine


def _missing_database(url: str, reason: str) -> str | None:
    """The server answered but has no such database (a fresh server needs `createdb` once): say exactly
    that."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if f'database "{u.database}" does not exist' not in reason:
        return None
    where = " ".join(
        f"{flag} {value}" for flag, value in (("-h", u.host), ("-p", u.port), ("-U", u.username)) if value
    )
    return (
        f"database {u.database!r} does not exist on the Postgres server at {mask_url(url)}: create it with "
        f"`createdb {where} {u.database}`, then run `swarmq db upgrade`"
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def autocommit_connections(sessions: sessionmaker[Session]) -> Callable[[], Connection]:
    """Core connections from the same pool whose statements each commit on their own: no BEGIN and COMMIT
    round trips around them, and none of a Session's bookkeeping. Only for statements that are a whole
    transaction by themselves (a worker's job path, `queue.jobs`: claim, finish, release)."""
    engine: Engine = sessions.kw["bind"]
    return engine.execution_options(isolation_level="AUTOCOMMIT").connect


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Apply migrations up to head; returns (before, after) revisions."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), "head")
    return before, current_revision(engine)


@cache
def script_head() -> str | None:
    """The head revision, read from the migration scripts' ``revision`` and ``down_revision`` assignments
    without Alembic: importing Alembic (and, through it, every script) costs a quarter of a second on each
    command's start, and the schema check needs only this one id. None when the scripts do not name exactly
    one head (a merge, a branch, an assignment that is not a literal): Alembic decides those."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        names: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    names[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
        revision, down = names.get("revision"), names.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif down is not None:
            return None  # a merge point (a tuple of parents)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def stored_revisions(conn: Connection) -> list[str]:
    """The rows of the version table (none on an empty schema): two short queries, no Alembic."""
    if conn.execute(text("SELECT to_regclass(:t)"), {"t": VERSION_TABLE}).scalar() is None:
        return []
    return [str(v) for v in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()]


def check_schema(engine: Engine) -> None:
    """Every command that needs the schema calls this: refuse to run against an old or empty schema. A schema
    at the scripts' one head passes on the cheap check; anything else is judged, and named, by Alembic."""
    with engine.connect() as conn:
        stored = stored_revisions(conn)
    head = script_head()
    if head is not None and stored == [head]:
        return
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        state = "empty" if current is None else f"at {current}, head is {head}"
        raise SchemaOutOfDate(f"database schema is {state}: run `swarmq db upgrade`")
