"""What a worker accepts from its queue (pure): a message is trusted for nothing but its shape.

Anyone who can write to Redis can push to a model queue, so every entry is checked before Celery sees it
(`transport`): a kombu envelope, JSON, for swarmq's one task, whose only argument is a job id or a list of
them (`broker.message_args`). Ids are positive integers that fit a BIGINT, at most `MAX_JOBS_PER_MESSAGE`
of them, none twice. The rest (the job's model, its experiment's state and ``jobs_per_message``) is the
claim's to check, in Postgres (`jobs.claim_many`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from swarmq import keys

MAX_JOBS_PER_MESSAGE = 1000
"""The most ids one message may carry: the bound on ``jobs_per_message`` (`experiment.config`)."""
MAX_JOB_ID = 2**63 - 1
"""Job ids are BIGINT."""


class BadMessage(ValueError):
    """A queue entry swarmq does not run; its message is one line (never the payload in full)."""


def job_ids(arg: Any) -> list[int]:
    """The job ids of a task's argument: one id, or a list of them; `BadMessage` for anything else (floats,
    strings and booleans included: nothing is coerced)."""
    ids = arg if isinstance(arg, list) else [arg]
    if not ids:
        raise BadMessage("no job ids")
    if len(ids) > MAX_JOBS_PER_MESSAGE:
        raise BadMessage(f"{len(ids)} job ids (at most {MAX_JOBS_PER_MESSAGE})")
    for i in ids:
        if type(i) is not int or not 0 < i <= MAX_JOB_ID:  # bool is an int subclass: refused by `type`
            raise BadMessage(f"job id {_short(i)} is not a positive 64-bit integer")
    if len(set(ids)) != len(ids):
        raise BadMessage("a job id twice")
    return list(ids)


def check_envelope(payload: Any) -> list[int]:
    """The job ids of a raw queue entry (decoded JSON), checked as kombu and Celery would read it, so that
    neither ever fails on it; `BadMessage` otherwise."""
    if not isinstance(payload, dict):
        raise BadMessage(f"not a message envelope ({type(payload).__name__})")
    props = payload.get("properties")
    if not isinstance(props, dict) or not isinstance(props.get("delivery_tag"), str):
        raise BadMessage("no delivery tag")
    info = props.get("delivery_info")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(k), str) for k in ("exchange", "routing_key")
    ):
        raise BadMessage("no delivery info")
    if payload.get("content-type") != "application/json":
        raise BadMessage(f"content type {_short(payload.get('content-type'))} (swarmq sends JSON only)")
    headers = payload.get("headers")
    if not isinstance(headers, dict) or headers.get("task") != keys.TASK_NAME:
        raise BadMessage("not a swarmq task")
    if not isinstance(headers.get("id"), str):
        raise BadMessage("no task id")
    body = payload.get("body")
    if not isinstance(body, str):
        raise BadMessage("no body")
    encoding = props.get("body_encoding")
    try:
        if encoding == "base64":
            body = base64.b64decode(body, validate=True).decode(
                str(payload.get("content-encoding") or "utf-8")
            )
        elif encoding is not None:
            raise BadMessage(f"body encoding {_short(encoding)}")
        args, kwargs, _embed = json.loads(body)
    except (binascii.Error, UnicodeDecodeError, LookupError, ValueError, TypeError) as exc:
        if isinstance(exc, BadMessage):
            raise
        raise BadMessage(f"unreadable body ({type(exc).__name__})") from None
    if not isinstance(args, list) or len(args) != 1 or kwargs not in ({}, None):
        raise BadMessage("arguments are not one job id or one list of them")
    return job_ids(args[0])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
