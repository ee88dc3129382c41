"""The null model: a stand-in Generator that answers every prompt at once with the same text.

`swarmq worker --cpu --burst --generator bench.null:null_generator --model models/null.gguf` runs the whole
job path (claim, route, Redis state, prompt, outcome write, update, release, ack) with no model cost, so what
is left is swarmq's own per-job overhead. The model file need not exist when a generator is given.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from swarmq.experiment.config import ModelConfig
from swarmq.model.base import Generation, GenerationRequest, ModelInfo

NULL_TEXT = "    return None\n"
"""Non-empty, so ``success: non_empty`` counts it and accumulating swarms grow their buffers."""


TRACE_ENV = "SWARMQ_BENCH_TRACE"
"""A file path: the worker counts its SQL statements and Redis round trips, and appends one JSON line per job."""


class Trace:
    """Counts Postgres round trips and Redis round trips in this process.

    Postgres, at psycopg (below SQLAlchemy, which the job path bypasses: `store.frozen`): every statement
    (``Cursor.execute``/``executemany``), plus the BEGIN psycopg sends before the first statement of a
    transaction and the COMMIT or ROLLBACK it sends to end one; a connection in autocommit mode sends
    neither, so they are counted only when psycopg has a transaction open. Redis: ``Redis.execute_command``,
    a pipeline as one, kombu's and swarmq's clients alike. CPU: the worker process's CPU time (every thread:
    Celery's, the job watch's, housekeeping's), which bounds its jobs per second whatever the services do.
    One line per generation holds the counts since the
    previous one: a whole job's cycle, from the previous generation's outcome write to this one's prompt.
    Housekeeping (heartbeat, reaper: a few calls every 5 s) lands in whichever job is running then."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        self.sql, self.transactions, self.redis = 0, 0, Counter[str]()
        self.cpu = time.process_time()

    def install(self) -> None:
        import psycopg
        import redis
        from psycopg.pq import TransactionStatus

        trace = self

        def idle(conn: Any) -> bool:
            return bool(conn.info.transaction_status == TransactionStatus.IDLE)

        def statement(method: Any) -> Any:
            def traced(cursor: Any, *args: Any, **kwargs: Any) -> Any:
                begins = not cursor.connection.autocommit and idle(
                    cursor.connection
                )  # psycopg sends BEGIN first
                trace._count(1, int(begins))
                return method(cursor, *args, **kwargs)

            return traced

        def ending(method: Any) -> Any:
            def traced(conn: Any, *args: Any, **kwargs: Any) -> Any:
                trace._count(0, int(not idle(conn)))  # COMMIT or ROLLBACK is sent only inside a transaction
                return method(conn, *args, **kwargs)

            return traced

        psycopg.Cursor.execute = statement(psycopg.Cursor.execute)  # type: ignore[method-assign]
        psycopg.Cursor.executemany = statement(psycopg.Cursor.executemany)  # type: ignore[method-assign]
        psycopg.Connection.commit = ending(psycopg.Connection.commit)  # type: ignore[method-assign]
        psycopg.Connection.rollback = ending(psycopg.Connection.rollback)  # type: ignore[method-assign]
        command, pipeline = redis.Redis.execute_command, redis.client.Pipeline.execute

        def execute_command(client: Any, *args: Any, **kwargs: Any) -> Any:
            trace._redis(str(args[0]).upper() if args else "?")
            return command(client, *args, **kwargs)

        def execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            trace._redis("PIPELINE")
            return pipeline(pipe, *args, **kwargs)

        redis.Redis.execute_command = execute_command  # type: ignore[method-assign]
        redis.client.Pipeline.execute = execute  # type: ignore[method-assign]

    def _count(self, statements: int, transaction_commands: int) -> None:
        with self.lock:
            self.sql += statements
            self.transactions += transaction_commands

    def _redis(self, name: str) -> None:
        with self.lock:
            self.redis[name] += 1

    def mark(self) -> None:
        cpu = time.process_time()
        with self.lock:
            line = {
                "sql": self.sql,
                "tx_commands": self.transactions,
                "redis": dict(self.redis),
                "cpu_ms": (cpu - self.cpu) * 1000,
            }
            self.sql, self.transactions, self.redis, self.cpu = 0, 0, Counter(), cpu
        with self.path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")


class NullGenerator:
    def __init__(self, path: Path, trace: Trace | None = None) -> None:
        self.info = ModelInfo("null", "0" * 64, 0.0, "null", 2048)
        self.trace = trace

    def generate(self, request: GenerationRequest) -> Generation:
        if self.trace is not None:
            self.trace.mark()
        return Generation(NULL_TEXT, "stop", len(request.prompt) // 4, 4, 0.0, 0.0)


def null_generator(path: Path, cfg: ModelConfig, gpu: int | None) -> NullGenerator:
    trace = Trace(Path(os.environ[TRACE_ENV])) if os.environ.get(TRACE_ENV) else None
    if trace is not None:
        trace.install()
    return NullGenerator(path, trace)


def per_job(path: Path) -> dict[str, Any]:
    """Mean SQL statements, BEGIN/COMMIT/ROLLBACKs, their sum (Postgres round trips), Redis round trips and the
    worker's CPU milliseconds per job from a trace file (each worker's first line, which holds its start-up, is
    left out)."""
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    jobs = [x for i, x in enumerate(lines) if i > 0]
    if not jobs:
        return {"jobs": 0}
    commands: Counter[str] = Counter()
    for x in jobs:
        commands.update(x["redis"])
    return {
        "jobs": len(jobs),
        "sql": sum(x["sql"] for x in jobs) / len(jobs),
        "tx_commands": sum(x["tx_commands"] for x in jobs) / len(jobs),
        "pg_round_trips": sum(x["sql"] + x["tx_commands"] for x in jobs) / len(jobs),
        "redis": sum(commands.values()) / len(jobs),
        "cpu_ms": sum(x.get("cpu_ms", 0.0) for x in jobs) / len(jobs),
        "redis_commands": {k: v / len(jobs) for k, v in commands.most_common()},
    }
