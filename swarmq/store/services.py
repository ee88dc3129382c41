"""Client factories: the one place that turns settings into Postgres and Redis clients (the configured
servers, or the embedded ones when `embedded.embedded_home` says so)."""

from __future__ import annotations

from dataclasses import dataclass

import redis as redis_lib
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from swarmq.errors import ConfigError, ServiceUnavailable, first_line, mask_url
from swarmq.settings import Settings
from swarmq.store import db


def redis_url(settings: Settings) -> str:
    """The configured Redis URL, or the embedded redis-server's (started on first use)."""
    from swarmq.store.embedded import embedded_home
    from swarmq.store.embedded import redis_url as embedded

    home = embedded_home(settings)
    if home is None:
        assert settings.redis_url is not None  # embedded_home returns None only when both URLs are set
        return settings.redis_url
    return embedded(home)


def make_redis(url: str) -> redis_lib.Redis:
    """A client that answered a PING. Anything that stops it (unreachable, a wrong password, a database index
    the server does not have) is one line, with the URL's password masked."""
    try:
        client = redis_lib.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    except ValueError as exc:  # redis-py refused the URL itself (e.g. ?socket_timeout=soon): bad input
        raise ConfigError(f"SWARMQ_REDIS_URL: {mask_url(url)}: {first_line(exc)}") from None
    try:
        client.ping()
    except (redis_lib.RedisError, OSError) as exc:
        raise ServiceUnavailable(f"cannot reach Redis at {mask_url(url)}: {first_line(exc)}") from None
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
