"""What work is left, as workers ask it: the models with unfinished jobs, and how many each has."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.experiment.config import ExperimentConfig
from swarmq.states import OPEN, ExperimentState, JobStatus, ordered, sql_list

# The states are literals in the SQL, not parameters: a prepared statement's generic plan can then use the
# partial indexes on open jobs.
_ACTIVE = sql_list([ExperimentState.ACTIVE])
_OPEN = sql_list(OPEN)
_UNFINISHED_MODELS = text(
    "SELECT e.config, j.model_key FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
    f"WHERE j.status IN {_OPEN} AND e.state IN {_ACTIVE} "
    "GROUP BY e.id, e.config, j.model_key ORDER BY min(e.created_at), e.id, j.model_key"
)
_UNFINISHED_COUNT = text(
    "SELECT count(*) FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
    f"WHERE j.model_key = :k AND e.state IN {_ACTIVE} AND j.status = ANY(:s)"
)
_EXPERIMENTS_ON = text(
    f"SELECT e.name FROM experiments e WHERE e.state IN {_ACTIVE} AND EXISTS (SELECT 1 FROM jobs j "
    f"WHERE j.experiment_id = e.id AND j.model_key = :k AND j.status IN {_OPEN}) ORDER BY e.created_at"
)


def unfinished_models(session: Session) -> list[tuple[dict[str, Any], str]]:
    """(model config, model key) of every model with unfinished jobs in an active experiment, the model of
    the oldest experiment first (an experiment may run several: each job has its condition's model)."""
    rows = session.execute(_UNFINISHED_MODELS).all()
    out: list[tuple[dict[str, Any], str]] = []
    for raw, key in rows:
        model = ExperimentConfig.stored(raw).models().get(str(key))
        if model is not None and all(k != key for _, k in out):
            out.append((model.model_dump(mode="json"), str(key)))
    return out


def unfinished_count(session: Session, model_key: str, statuses: Collection[JobStatus] = OPEN) -> int:
    """Jobs on a model in active experiments with one of ``statuses``: `states.OPEN`, not over (a burst
    worker stops at 0), or `states.IN_FLIGHT`, which a worker could take or is taking now."""
    params = {"k": model_key, "s": [s.value for s in ordered(statuses)]}
    return int(session.execute(_UNFINISHED_COUNT, params).scalar_one())


def experiments_on(session: Session, model_key: str) -> list[str]:
    """Names of active experiments with unfinished jobs on a model, oldest first."""
    return list(session.execute(_EXPERIMENTS_ON, {"k": model_key}).scalars())
