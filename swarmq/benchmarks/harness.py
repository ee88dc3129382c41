"""The SWE-bench harness round trip: read its report back and record `resolved` on the outcomes.

Predictions go out with `swarmq export --format swebench`; the official harness evaluates them; its report
(the run summary with ``resolved_ids``/``unresolved_ids``, or per-instance ``{id: {"resolved": bool}}``) comes
back with `swarmq import-eval`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.errors import DatasetError, ExperimentConflict
from swarmq.store import counters
from swarmq.store.experiments import check_selection, experiment_row


def parse_report(data: Any, source: str = "report") -> dict[str, bool]:
    """Instance id → resolved (pure). Instances the harness could not evaluate count as not resolved."""
    if isinstance(data, dict) and ("resolved_ids" in data or "unresolved_ids" in data):
        keys = ("resolved_ids", "unresolved_ids", "error_ids", "empty_patch_ids")
        for key in keys:
            ids = data.get(key) or []
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise DatasetError(f"{source}: {key} must be a list of instance ids (strings)")
        verdicts = {
            str(i): False
            for key in ("unresolved_ids", "error_ids", "empty_patch_ids")
            for i in data.get(key) or []
        }
        verdicts.update({str(i): True for i in data.get("resolved_ids") or []})
        return verdicts
    if (
        isinstance(data, dict)
        and data
        and all(isinstance(v, dict) and "resolved" in v for v in data.values())
    ):
        return {str(k): bool(v["resolved"]) for k, v in data.items()}
    raise DatasetError(
        f"{source}: not a SWE-bench harness report (expected resolved_ids/unresolved_ids or "
        "{instance_id: {resolved: ...}})"
    )


def load_report(path: Path) -> dict[str, bool]:
    """Verdicts from the harness's report file; a file that cannot be one is named in one line, before any
    connection is made."""
    from swarmq.files import bad_text, loads, read_text, where

    if not path.exists():
        raise DatasetError(f"report not found: {path}")
    text = read_text(path, str(path))
    try:
        data = loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if (bad := bad_text(data)) is not None:
        raise DatasetError(f"{path}: {where(bad[0])}: {bad[1]}")
    return parse_report(data, str(path))


def import_verdicts(
    session: Session, experiment: str, condition: str, replicate: int, verdicts: dict[str, bool]
) -> tuple[int, int]:
    """Set ``resolved`` on the stream's outcomes; returns (updated, resolved). All or nothing. A harness
    report holds one verdict per instance: it is sample 0's (`export` writes sample 0's predictions)."""
    exp_id, config = experiment_row(session, experiment)
    check_selection(experiment, config, condition, replicate)
    ids = set(
        session.execute(
            text(
                "SELECT instance_id FROM jobs WHERE experiment_id = :e AND condition = :c AND replicate = :r"
            ),
            {"e": exp_id, "c": condition, "r": replicate},
        ).scalars()
    )
    unknown = sorted(set(verdicts) - ids)
    if unknown:
        raise ExperimentConflict(
            f"report is not for {experiment}/{condition}/r{replicate}: {len(unknown)} of its {len(verdicts)} "
            f"instances are not in it (e.g. {unknown[0]})"
        )
    updated = 0
    for instance_id, resolved in verdicts.items():
        updated += session.execute(
            text(
                "UPDATE outcomes o SET resolved = :v FROM jobs j "
                "WHERE o.job_id = j.id AND j.experiment_id = :e "
                f"AND j.condition = :c AND j.replicate = :r AND j.instance_id = :i AND {counters.PRIMARY}"
            ),
            {"v": resolved, "e": exp_id, "c": condition, "r": replicate, "i": instance_id},
        ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return updated, sum(verdicts.values())
