"""Statements compiled once and run on the driver, for the job path.

A worker runs the same few statements for every job (`queue.jobs`: claim, finish, release). Built and executed
as Core statements through a Session, each call rebuilds the expression, proxies every column of its CTEs and
aliases, walks it for SQLAlchemy's compile-cache key, and pays the Session's and the result's bookkeeping:
measured here, a claim took 1.9 ms through a Session, 1.4 ms through a Core connection and 1.0 ms on
psycopg itself, Postgres included. Frozen, a statement is built from the same Core expressions (the rules
stay where they are) and compiled once; each call binds its parameters with the types' own processors and
runs as the driver's SQL (``exec_driver_sql``) in the caller's Session or Connection and transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = pg_psycopg.dialect()
"""The dialect swarmq's engines use (``postgresql+psycopg``): its SQL and its parameter processors."""

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Frozen:
    """A compiled statement: its SQL, the names the caller binds (the expression's explicit `bindparam`s),
    the values of the others (its own literals, such as ``status = 'running'``) and each parameter's
    processor (JSONB values are wrapped for psycopg, ...)."""

    sql: str
    required: frozenset[str]
    defaults: dict[str, Any]
    processors: dict[str, Processor]

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every parameter's value, processed: ``given`` by name, the literals as compiled."""
        if missing := self.required - given.keys():
            raise TypeError(f"frozen statement needs parameters {sorted(missing)}")
        values = {**self.defaults, **given}
        for name, process in self.processors.items():
            values[name] = process(values[name])
        return values

    def run(self, executor: Session | Connection, **given: Any) -> list[Any]:
        """Execute in ``executor``'s transaction (autocommit where its connection is); the rows. The caller
        commits, as with `Session.execute`. SQLAlchemy still wraps errors and discards a connection that
        died (``exec_driver_sql``), so the worker's retries see what they see on every other statement."""
        conn = executor.connection() if isinstance(executor, Session) else executor
        result = conn.exec_driver_sql(self.sql, self.params(given))
        return list(result.all()) if result.returns_rows else []


def freeze(stmt: ClauseElement) -> Frozen:
    """Compile ``stmt`` once. Explicit `bindparam`s keep their names (the caller binds them); the expression's
    own literals keep their values."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=_DIALECT))
    processors: dict[str, Processor] = {}
    for bind in compiled.binds.values():
        process = bind.type._cached_bind_processor(_DIALECT)
        if process is not None:
            processors[compiled.bind_names[bind]] = process
    required = frozenset(b.key for b in compiled.binds.values() if compiled.bind_names[b] == b.key)
    return Frozen(str(compiled), required, dict(compiled.params), processors)


def frozen(build: Callable[..., ClauseElement]) -> Callable[..., Frozen]:
    """Decorate a statement builder: each distinct argument tuple is built and compiled once."""
    return cache(lambda *args: freeze(build(*args)))
