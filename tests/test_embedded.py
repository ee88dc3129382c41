"""Embedded servers only on purpose (issue 14, item 4): used when both URLs are unset, said once per command on
stderr, refused with exit 3 under SWARMQ_EMBEDDED=0, and a half-configured pair is an error naming the missing
URL. The embedded path itself runs end to end on real embedded PostgreSQL and redis-server."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmq.errors import ConfigError, ServiceUnavailable
from swarmq.settings import Settings, get_settings
from swarmq.store import embedded
from tests.conftest import swarmq
from tests.helpers import write_config

ANNOUNCE = "swarmq: using embedded servers in "


def no_urls(**extra: str) -> dict[str, str]:
    """The environment of a machine where nothing of swarmq is configured, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SWARMQ_")}, **extra}


@pytest.fixture
def clear_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(("given", "missing"), [("DATABASE", "REDIS"), ("REDIS", "DATABASE")])
def test_half_configured_pair_names_the_missing_url(
    given: str, missing: str, monkeypatch: pytest.MonkeyPatch, clear_settings: None
) -> None:
    for name in ("SWARMQ_DATABASE_URL", "SWARMQ_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    url = "postgresql://postgres@db:5432/swarmq" if given == "DATABASE" else "redis://redis:6379/0"
    monkeypatch.setenv(f"SWARMQ_{given}_URL", url)
    with pytest.raises(ConfigError, match=rf"^SWARMQ_{missing}_URL is unset while SWARMQ_{given}_URL is set"):
        get_settings()


def test_embedded_home_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Configured URLs: no embedded servers, nothing said. Both unset: the home, said once per process.
    SWARMQ_EMBEDDED=0: refused before anything is started."""
    both = Settings(database_url="postgresql://h/db", redis_url="redis://h/0", home=tmp_path)
    assert embedded.embedded_home(both) is None
    assert capsys.readouterr().err == ""

    home = tmp_path / "announce-once"
    unset = Settings(database_url=None, redis_url=None, home=home, embedded=True)
    assert embedded.embedded_home(unset) == home
    assert embedded.embedded_home(unset) == home
    assert capsys.readouterr().err.count(ANNOUNCE + str(home)) == 1

    refused = Settings(database_url=None, redis_url=None, home=tmp_path / "never", embedded=False)
    with pytest.raises(ServiceUnavailable, match="SWARMQ_EMBEDDED=0 forbids embedded servers") as info:
        embedded.embedded_home(refused)
    assert info.value.exit_code == 3
    assert not (tmp_path / "never").exists()


def test_cli_half_configured_exits_2_on_one_line() -> None:
    r = swarmq("db", "status", env=no_urls(SWARMQ_REDIS_URL="redis://127.0.0.1:1/0"), timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "swarmq: error: SWARMQ_DATABASE_URL is unset while SWARMQ_REDIS_URL is set: set both to use shared "
        "servers (or neither, for embedded ones)"
    ]


def test_cli_embedded_forbidden_exits_3_and_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = swarmq("db", "upgrade", env=no_urls(SWARMQ_EMBEDDED="0", SWARMQ_HOME=str(home)), timeout=60)
    assert r.returncode == 3, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith(
        "swarmq: error: SWARMQ_DATABASE_URL and SWARMQ_REDIS_URL are unset and SWARMQ_EMBEDDED=0"
    )
    assert not home.exists(), "nothing may be started (or created) when embedded servers are forbidden"


@pytest.mark.services
def test_embedded_servers_run_an_experiment_and_say_so_once_per_command() -> None:
    """A machine with nothing configured (`make demo` on a fresh clone): every command starts or reuses the same
    embedded servers and says so once on stderr, never on stdout (JSON output stays parseable)."""
    # Short path: PostgreSQL's unix socket lives under it (108-byte limit on sun_path).
    home = Path(tempfile.mkdtemp(prefix="sq-emb-"))
    env = no_urls(SWARMQ_HOME=str(home), SWARMQ_REAPER_SECONDS="1")
    config = write_config(home, name="emb", limit=2, conditions={"a": {}})
    try:
        steps = [
            ("db", "upgrade"),
            ("enqueue", str(config), "--format", "json"),
            ("worker", "--cpu", "--burst", "--generator", "tests.fakes:hash_generator"),
            ("results", "emb", "--format", "json"),
        ]
        outputs = []
        for args in steps:
            r = swarmq(*args, env=env, timeout=240)
            assert r.returncode == 0, (args, r.stderr[-2000:])
            said = [line for line in r.stderr.splitlines() if line.startswith(ANNOUNCE)]
            assert said == [f"{ANNOUNCE}{home} (SWARMQ_DATABASE_URL/SWARMQ_REDIS_URL unset)"], (
                args,
                r.stderr,
            )
            assert ANNOUNCE not in r.stdout
            outputs.append(r.stdout)
        results = json.loads(outputs[-1])
        assert sum(g["done"] for g in results["groups"]) == 2
        assert (home / "postgres").is_dir() and (home / "redis" / "redis.sock").exists()
    finally:
        swarmq("services", "stop", env=env, timeout=60)
        _wait_stopped(home)
        shutil.rmtree(home, ignore_errors=True)


def _wait_stopped(home: Path) -> None:
    """The servers exit asynchronously after `services stop`; removing their files first would leave them
    running on deleted sockets."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        (home / "postgres" / "postmaster.pid").exists() or (home / "redis" / "redis.sock").exists()
    ):
        time.sleep(0.2)
