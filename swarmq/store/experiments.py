"""Finding an experiment by the name users give it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.errors import UnknownExperiment, UnknownSelection


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


def check_selection(name: str, config: dict[str, Any], condition: str | None, replicate: int | None) -> None:
    """Refuse a ``--condition`` or ``--replicate`` that experiment ``name`` (stored ``config``) does not have:
    the one check every command that selects streams makes, so that a typo is an error (exit 4), never an
    empty answer that reads like a result."""
    conditions = list(config.get("conditions", {}))
    if condition is not None and condition not in conditions:
        shown = ", ".join(conditions[:10]) + (", ..." if len(conditions) > 10 else "")
        raise UnknownSelection(f"--condition: experiment {name!r} has no condition {condition!r} ({shown})")
    replicates = int(config.get("replicates", 1))
    if replicate is not None and not 0 <= replicate < replicates:
        raise UnknownSelection(
            f"--replicate: experiment {name!r} has no replicate {replicate} "
            f"(replicates 0 to {replicates - 1})"
        )


def latest_name(session: Session) -> str:
    """The newest experiment's name: what a command given no name reports on."""
    name = session.execute(
        text("SELECT name FROM experiments ORDER BY created_at DESC, id DESC LIMIT 1")
    ).scalar()
    if name is None:
        raise UnknownExperiment("no experiments yet (enqueue one: `swarmq enqueue CONFIG`)")
    return str(name)
