"""Workers' heartbeat records in Redis (written by `worker.housekeeping`): reading them, and the one rule for
whether a worker is live, lost or stopped, which `workers list`, the healthcheck and a worker choosing its
model all apply."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from swarmq import keys
from swarmq.settings import DEFAULTS


def decoded(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def records(redis: Any) -> list[dict[str, str]]:
    """Every worker's heartbeat record, by key order."""
    found = []
    for key in sorted(redis.scan_iter(match=f"{keys.WORKER_PREFIX}*")):
        record = {decoded(k): decoded(v) for k, v in redis.hgetall(key).items()}
        if record:
            found.append(record)
    return found


def age(record: Mapping[str, str], now: float) -> float:
    """Seconds since the record's last beat (infinite when it holds none)."""
    try:
        last = float(record.get("last_seen") or "nan")
    except ValueError:
        return math.inf
    return math.inf if math.isnan(last) else now - last


def state(record: Mapping[str, str], now: float) -> str:
    """``stopped`` after a clean exit; ``live`` while its last beat is no older than its own lease; else
    ``lost``."""
    if record.get("stopped_at"):
        return "stopped"
    try:
        lease = float(record.get("lease_seconds") or DEFAULTS.lease_seconds)
    except ValueError:
        return "lost"
    return "live" if age(record, now) <= lease else "lost"
