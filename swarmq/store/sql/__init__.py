"""Server-side SQL as files: every PL/pgSQL function, trigger and view swarmq keeps in Postgres.

Layout: ``<revision>/<name>.sql`` holds object ``name`` as migration ``<revision>`` creates it, pinned: a
migration loads the files of its own revision (or, to restore what it replaces on downgrade, those of an
earlier one), never a newer copy, so upgrading or downgrading to any revision rebuilds that revision's
objects exactly. The newest file of a name is its live body, which `tests/test_sql_files.py` compares with
``pg_get_functiondef`` at the head; the same test pins each file's content, as a database that ran a revision
never runs its files again.

Each file is idempotent (``CREATE OR REPLACE``; triggers dropped if they exist, then created) and may hold
several statements: a trigger function with its triggers. To change an object, copy its file into a new
revision's folder, edit it there, and load it from that revision's migration (upgrade: the new file;
downgrade: the previous one).

Files before revision 0012 are the SQL that revision generated, frozen and wrapped to 100 characters;
0012's are written by hand.
"""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent


def read(revision: str, name: str) -> str:
    """The SQL of object ``name`` as revision ``revision`` wrote it."""
    path = SQL_DIR / revision / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file {name}.sql for revision {revision} in {SQL_DIR}")
    return path.read_text(encoding="utf-8")
