"""One name, one process: a worker's name is leased in Redis while it runs.

Two processes under one ``--name`` would look like one worker to `workers list` and to every log; the lease
owner carries a per-process token so they could never share a job, but the name itself is refused at start.
The lease is renewed by its own thread from the moment it is taken; a name whose holder died on this host
(its pid is gone) is taken over at once, so a supervisor's restart is not refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

import redis as redis_lib

from swarmq import keys
from swarmq.errors import NameInUse

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class NameLease:
    def __init__(self, redis: redis_lib.Redis, name: str, host: str, token: str, ttl_seconds: float) -> None:
        self.redis, self.name, self.key = redis, name, keys.worker_name_key(name)
        self.value = f"{host}:{os.getpid()}:{token}"
        self.host, self.ttl_ms = host, max(1000, int(ttl_seconds * 1000))
        self._stop = threading.Event()

    def acquire(self) -> None:
        """Take the name, or raise one line naming its holder."""
        if self.redis.set(self.key, self.value, nx=True, px=self.ttl_ms):
            self._keep()
            return
        held = self.redis.get(self.key)
        holder = held.decode() if isinstance(held, bytes) else str(held or "")
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        # Its holder died on this host (or had our pid: a container's restarted PID 1): a restart takes over.
        if host == self.host and pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            self.redis.set(self.key, self.value, px=self.ttl_ms)
            self._keep()
            return
        raise NameInUse(
            f"worker name {self.name!r} is in use by pid {pid or '?'} on {host or '?'}; choose another --name"
        )

    def _keep(self) -> None:
        """Renew from the moment the name is taken (a model may take minutes to load) until `release`."""
        threading.Thread(target=self._renewing, name="swarmq-name-lease", daemon=True).start()

    def _renewing(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self.renew():
                    log.error("worker name %s is held by another process", self.name)
            except (redis_lib.RedisError, OSError) as exc:  # an outage: housekeeping decides when to give up
                log.warning("worker name %s: lease not renewed: %s", self.name, exc)

    def renew(self) -> bool:
        """Extend the lease (or take it back if it lapsed while unheld); False if another process holds it."""
        return bool(self.redis.eval(_RENEW, 1, self.key, self.value, self.ttl_ms))

    def release(self) -> None:
        """Stop renewing and free the name on the way out; best effort, as the way out may be Redis being gone
        (the lease then lapses after its ttl, and a restart on this host takes it over at once anyway)."""
        self._stop.set()
        with contextlib.suppress(redis_lib.RedisError, OSError):
            self.redis.eval(_RELEASE, 1, self.key, self.value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
