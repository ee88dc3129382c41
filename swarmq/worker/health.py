"""`python -m swarmq.worker.health [NAME]`: the container (or systemd) healthcheck of a worker.

Healthy means a worker on this host (named NAME, if given) published its heartbeat (`housekeeping`) within its
lease and has not stopped: the one rule (`store.heartbeats.state`) by which `swarmq workers list` shows it as
live. It reads only Redis (one scan of the heartbeat records), imports no model or Celery, and prints one
line, so it is cheap enough to run every 30 s. Exit 0 healthy, 1 not, 3 when Redis cannot be reached.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterable, Mapping

from swarmq.errors import SwarmqError
from swarmq.settings import get_settings
from swarmq.store import heartbeats


def live_workers(
    records: Iterable[Mapping[str, str]], *, host: str, name: str | None, now: float
) -> list[str]:
    """Names of the heartbeat records of ``host`` (and ``name``: the full ``name@host`` or the part before the
    ``@``) whose last beat is no older than their own lease."""
    live = []
    for rec in records:
        full = rec.get("name", "")
        if rec.get("host") != host or (name is not None and name not in (full, full.split("@", 1)[0])):
            continue
        if heartbeats.state(rec, now) == "live":
            live.append(full)
    return live


def main(argv: list[str]) -> int:
    from swarmq.store.services import make_redis, redis_url

    name = argv[0] if argv else None
    host = socket.gethostname()
    try:
        redis = make_redis(redis_url(get_settings()))
        records = heartbeats.records(redis)
    except SwarmqError as exc:
        print(f"swarmq health: {exc}", file=sys.stderr)
        return exc.exit_code
    live = live_workers(records, host=host, name=name, now=time.time())
    who = f"worker {name}" if name else "worker"
    if live:
        print(f"healthy: {', '.join(sorted(live))} beat within its lease")
        return 0
    print(f"unhealthy: no {who} on {host} beat within its lease (starting, loading a model, or stuck)")
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
