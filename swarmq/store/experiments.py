"""Finding an experiment by the name users give it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.errors import UnknownExperiment


def experiment_row(session: Session, name: str) -> tuple[int, dict[str, Any]]:
    """Id and stored configuration of experiment ``name``; an unknown name lists the newest known ones."""
    row = session.execute(text("SELECT id, config FROM experiments WHERE name = :n"), {"n": name}).first()
    if row is None:
        known = (
            session.execute(text("SELECT name FROM experiments ORDER BY created_at DESC LIMIT 5"))
            .scalars()
            .all()
        )
        hint = f" (known: {', '.join(known)})" if known else " (no experiments yet)"
        raise UnknownExperiment(f"unknown experiment {name!r}{hint}")
    return int(row[0]), dict(row[1])


def latest_name(session: Session) -> str:
    """The newest experiment's name: what a command given no name reports on."""
    name = session.execute(
        text("SELECT name FROM experiments ORDER BY created_at DESC, id DESC LIMIT 1")
    ).scalar()
    if name is None:
        raise UnknownExperiment("no experiments yet (enqueue one: `swarmq enqueue CONFIG`)")
    return str(name)
