"""Statements compiled once, for the job path.

A worker runs the same few statements for every job (`queue.jobs`: claim, finish, release). Built and executed
as Core statements, each call rebuilds the expression, proxies every column of its CTEs and aliases, and
walks it for SQLAlchemy's compile-cache key: about a millisecond of Python per job, a third of the job's
budget (bench figure 2). Frozen, the statement is built and compiled to SQL once, from the same Core
expressions (the rules stay where they are), and each call only binds its parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = psycopg2.dialect(paramstyle="named")
"""Renders ``:name`` placeholders (what `text` reads) and no inline casts; the statement runs on psycopg."""


@dataclass(frozen=True)
class Frozen:
    """A compiled statement: its SQL with typed parameters, the names the caller binds (the expression's
    explicit `bindparam`s) and the values of the others (its own literals, such as ``status = 'running'``)."""

    sql: TextClause
    required: frozenset[str]
    defaults: dict[str, Any]

    def bind(self, **params: Any) -> tuple[TextClause, dict[str, Any]]:
        """What `Session.execute` takes: the SQL, and every parameter's value (``params`` by name)."""
        if missing := self.required - params.keys():
            raise TypeError(f"frozen statement needs parameters {sorted(missing)}")
        return self.sql, {**self.defaults, **params}


def freeze(stmt: ClauseElement) -> Frozen:
    """Compile ``stmt`` once. Explicit `bindparam`s keep their names (the caller binds them); the expression's
    own literals keep their values."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=_DIALECT))
    binds = {compiled.bind_names[b]: bindparam(compiled.bind_names[b], type_=b.type) for b in compiled.binds.values()}
    # The dialect writes some parameters' casts inline (``:limits::JSONB``), which `text` would not read as a
    # parameter: spell them as CAST.
    sql = re.sub(r":(\w+)::(\w+(?:\[\])?)", r"CAST(:\1 AS \2)", str(compiled))
    required = frozenset(b.key for b in compiled.binds.values() if compiled.bind_names[b] == b.key)
    return Frozen(text(sql).bindparams(*binds.values()), required, dict(compiled.params))


def frozen(build: Callable[..., ClauseElement]) -> Callable[..., Frozen]:
    """Decorate a statement builder: each distinct argument tuple is built and compiled once."""
    return cache(lambda *args: freeze(build(*args)))
