"""What every configuration model shares: a strict base, upper bounds whose messages say why they exist, and
the context that marks a configuration read back from Postgres.

Upper bounds keep a typo or an extra zero from building a billion Redis keys or job rows. Refusals apply to
files (`experiment.file`), never to a stored configuration: it was valid when it was enqueued, and a worker,
the reaper or `results` must still be able to read it.
"""

from __future__ import annotations

from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

STORED = {"stored": True}
"""Validation context of a configuration read back from Postgres (`ExperimentConfig.stored`)."""


class Strict(BaseModel):
    # Finite floats only: .inf passes a ">= 0" check and then breaks the JSONB the config is stored in.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def is_stored(info: ValidationInfo) -> bool:
    """Whether this validation reads a stored configuration back (refusals are skipped then)."""
    return bool(info.context and info.context.get("stored"))


def at_len(limit: int, why: str) -> AfterValidator:
    """An upper bound on a mapping's size whose message says why it exists."""

    def check(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if len(value) > limit and not is_stored(info):
            raise ValueError(f"{len(value)} entries are above the limit of {limit}: {why}")
        return value

    return AfterValidator(check)


def at_most(limit: int, why: str) -> AfterValidator:
    """An upper bound whose message says why it exists."""

    def check(value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value > limit and not is_stored(info):
            raise ValueError(f"{value} is above the limit of {limit}: {why}")
        return value

    return AfterValidator(check)
