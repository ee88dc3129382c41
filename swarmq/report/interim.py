"""Whether a comparison is final: a test read before the experiment is complete, and read again as outcomes
arrive, is a sequential look that inflates false positives (stopping at the first p < 0.05 of looks every
few issues roughly doubles the error). swarmq does not spend alpha across looks; it labels every comparison
shown while jobs remain, in `results` and in `status --watch` (`label`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.states import OPEN, ExperimentState, JobStatus

LABEL = "interim: not a final test"
"""What a comparison shown before the experiment is complete is labelled."""
UNFINISHED = (*sorted(OPEN), JobStatus.PAUSED)


def is_interim(unfinished_jobs: int, state: str) -> bool:
    """An experiment is incomplete while jobs may still run: some job pending, queued, running or paused, and
    the experiment not cancelled (a cancelled one will not change)."""
    return unfinished_jobs > 0 and state != ExperimentState.CANCELLED.value


def label(unfinished_jobs: int, state: str) -> str | None:
    """`LABEL` for an incomplete experiment, None for a complete one: what `status --watch` and `results`
    print beside their comparisons."""
    return LABEL if is_interim(unfinished_jobs, state) else None


def experiment_is_interim(session: Session, experiment_id: int) -> bool:
    """`is_interim` of a stored experiment."""
    row = session.execute(
        text(
            "SELECT x.state, (SELECT count(*) FROM jobs j WHERE j.experiment_id = x.id "
            "AND j.status = ANY(:open)) FROM experiments x WHERE x.id = :e"
        ),
        {"e": experiment_id, "open": [s.value for s in UNFINISHED]},
    ).one()
    return is_interim(int(row[1]), str(row[0]))
