"""The job list's filters: parsed once from a page's query string, turned into one SQL condition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from swarmq.errors import ConfigError
from swarmq.states import JobStatus
from swarmq.store.counters import SCORING_ERROR, SUCCESS
from swarmq.view.models import VERDICTS

VERDICT_SQL = (
    f"CASE WHEN o.id IS NULL THEN 'none' WHEN {SCORING_ERROR} THEN 'unjudged' "
    f"WHEN {SUCCESS} THEN 'success' ELSE 'failure' END"
)
"""A job's verdict (`models.VERDICTS`) from jobs ``j`` left-joined to outcomes ``o``, by the rules results
count with (`store.counters`)."""

LIMIT = 500
"""Jobs listed on a served page; the filters narrow the rest down."""


@dataclass(frozen=True)
class JobFilter:
    condition: str | None = None
    replicate: int | None = None
    agent: int | None = None
    task_type: str | None = None
    verdict: str | None = None
    status: str | None = None
    sample: int | None = None
    """Which of ``generation.samples`` (0: the job the results count)."""
    q: str | None = None
    """Text searched (case-insensitively) in the issue id, completion, errors and the scorer's detail."""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> JobFilter:
        """From a query string; empty values mean no filter. A malformed value is a `ConfigError`."""
        given = {k: v.strip() for k, v in params.items() if k in FIELDS and v.strip()}
        values: dict[str, Any] = dict(given)
        for name in ("replicate", "agent", "sample"):
            if name in given:
                try:
                    values[name] = int(given[name])
                except ValueError:
                    raise ConfigError(f"{name}: not a whole number: {given[name]!r}") from None
        if values.get("verdict") not in (None, *VERDICTS):
            raise ConfigError(f"verdict: unknown {values['verdict']!r} (choose from {', '.join(VERDICTS)})")
        if values.get("status") not in (None, *(s.value for s in JobStatus)):
            raise ConfigError(f"status: unknown {values['status']!r}")
        return cls(**values)

    def active(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def where(self) -> tuple[str, dict[str, Any]]:
        """An SQL condition over jobs ``j``, issues ``i`` and outcomes ``o`` (left-joined), and its
        parameters."""
        clauses, params = ["true"], dict[str, Any]()
        for name, column in (
            ("condition", "j.condition"),
            ("replicate", "j.replicate"),
            ("agent", "o.agent_id"),
            ("task_type", "i.task_type"),
            ("status", "j.status"),
            ("sample", "j.sample"),
        ):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{column} = :f_{name}")
                params[f"f_{name}"] = value
        if self.verdict is not None:
            clauses.append(f"({VERDICT_SQL}) = :f_verdict")
            params["f_verdict"] = self.verdict
        if self.q:
            clauses.append(
                "(j.instance_id ILIKE :f_q OR o.completion ILIKE :f_q OR j.error ILIKE :f_q "
                "OR o.error ILIKE :f_q OR o.score_detail::text ILIKE :f_q)"
            )
            params["f_q"] = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return " AND ".join(clauses), params


FIELDS = tuple(JobFilter.__dataclass_fields__)
