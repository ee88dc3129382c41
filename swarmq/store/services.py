"""Client factories: the one place that turns settings into Postgres and Redis clients."""

from __future__ import annotations

from dataclasses import dataclass

import redis as redis_lib
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from swarmq.errors import ServiceUnavailable
from swarmq.settings import Settings
from swarmq.store import db


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    from swarmq.store.embedded import redis_url as embedded

    return embedded(settings.home)


def make_redis(url: str) -> redis_lib.Redis:
    client = redis_lib.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    try:
        client.ping()
    except (redis_lib.ConnectionError, redis_lib.TimeoutError, OSError) as exc:
        raise ServiceUnavailable(f"cannot reach Redis at {url}: {exc}") from None
    return client


@dataclass
class Services:
    """Connected clients, created once per process and passed to whatever needs them."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis_lib.Redis
    redis_url: str


def connect(settings: Settings, *, check_schema: bool = True) -> Services:
    engine = db.make_engine(db.database_url(settings))
    if check_schema:
        db.check_schema(engine)
    url = redis_url(settings)
    return Services(settings, engine, db.make_sessionmaker(engine), make_redis(url), url)
