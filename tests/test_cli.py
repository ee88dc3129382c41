"""The CLI as a user meets it: bad input gets one clear line naming the culprit, a non-zero exit, and
nothing half-written. Real Postgres and Redis; subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.conftest import swarmq
from tests.helpers import write_config

pytestmark = pytest.mark.services


def counts(database_url: str) -> tuple[int, int, int]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM experiments), (SELECT count(*) FROM jobs), (SELECT count(*) FROM outcomes)"
        ).fetchone()
        assert row is not None
        return row


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("swarmq: error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def bad_yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


GOOD = (
    "name: x\ndataset: {benchmark: humaneval, limit: 2}\nmodel: {path: models/m.gguf}\nconditions: {a: {}}\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [oops\n", "bad.yaml:2: malformed YAML"),
        (GOOD + "colour: blue\n", "bad.yaml:5: colour: unknown field"),
        (
            GOOD.replace("a: {}", "a: {router: best}"),
            "bad.yaml:4: conditions.a.router: unknown router 'best'",
        ),
        (GOOD + "replicates: 0\n", "bad.yaml:5: replicates: Input should be greater than or equal to 1"),
        (GOOD.replace("limit: 2", "source: nowhere.jsonl"), "dataset file not found: nowhere.jsonl"),
        (GOOD.replace("limit: 2", "categories: [astrology]"), "dataset is empty after filters"),
    ],
)
def test_bad_experiment_files(
    tmp_path: Path, services_env: dict[str, str], database_url: str, text: str, expected: str
) -> None:
    r = swarmq("enqueue", str(bad_yaml(tmp_path, text)), env=services_env)
    assert r.returncode == 2, r.stderr
    assert expected in one_error_line(r.stderr)
    assert counts(database_url) == (0, 0, 0)


def test_bad_dataset_rows(tmp_path: Path, services_env: dict[str, str], database_url: str) -> None:
    rows = tmp_path / "rows.jsonl"
    good = {"task_id": "t/0", "prompt": "def f():\n", "entry_point": "f", "test": "def check(c): pass\n"}
    rows.write_text("\n".join(json.dumps(r) for r in [good, {**good, "task_id": "t/1", "test": None}]) + "\n")
    cfg = bad_yaml(tmp_path, GOOD.replace("limit: 2", f"source: {rows}"))
    r = swarmq("enqueue", str(cfg), env=services_env)
    assert r.returncode == 2
    assert "row 1 (instance 't/1'): missing field 'test'" in one_error_line(r.stderr)
    rows.write_text("\n".join(json.dumps(r) for r in [good, good]) + "\n")
    r = swarmq("enqueue", str(cfg), env=services_env)
    assert r.returncode == 2
    assert "duplicate instance id 't/0'" in one_error_line(r.stderr)
    assert counts(database_url) == (0, 0, 0)


def test_unreachable_services(tmp_path: Path, services_env: dict[str, str], database_url: str) -> None:
    cfg = write_config(tmp_path)
    r = swarmq("enqueue", str(cfg), env={**services_env, "SWARMQ_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert r.returncode == 3
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in one_error_line(r.stderr)
    r = swarmq(
        "results", "x", env={**services_env, "SWARMQ_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    )
    assert r.returncode == 3
    assert "cannot reach Postgres at postgresql+psycopg://postgres@127.0.0.1:1/none" in one_error_line(
        r.stderr
    )
    assert counts(database_url) == (0, 0, 0)


def test_unknown_experiment(services_env: dict[str, str], tmp_path: Path) -> None:
    for args in (
        ["results", "ghost"],
        ["status", "ghost"],
        ["export", "ghost", "-o", str(tmp_path / "x.jsonl")],
        ["state", "show", "ghost"],
        ["state", "check", "ghost"],
        ["plot", "ghost", "-o", str(tmp_path)],
    ):
        r = swarmq(*args, env=services_env)
        assert r.returncode == 4, (args, r.stderr)
        assert "unknown experiment 'ghost'" in one_error_line(r.stderr)
    assert not (tmp_path / "x.jsonl").exists()


def test_schema_must_be_current(services_env: dict[str, str], pg_admin_url: str) -> None:
    name = "swarmq_test_empty_schema"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_admin_url.rsplit("/", 1)[0] + f"/{name}" if "?" not in pg_admin_url else None
    if url is None:
        pytest.skip("embedded server URL")
    r = swarmq("results", "x", env={**services_env, "SWARMQ_DATABASE_URL": url})
    assert r.returncode == 3
    assert "database schema is empty: run `swarmq db upgrade`" in one_error_line(r.stderr)


def test_name_clash_and_resume(tmp_path: Path, services_env: dict[str, str], database_url: str) -> None:
    cfg = write_config(tmp_path, name="same", limit=2)
    first = swarmq("enqueue", str(cfg), env=services_env)
    assert first.returncode == 0 and "enqueued experiment same: 4 jobs" in first.stdout
    again = swarmq("enqueue", str(cfg), env=services_env)
    assert again.returncode == 0 and "resumed experiment same: 4 jobs" in again.stdout
    assert counts(database_url) == (1, 4, 0)
    other = write_config(tmp_path, name="same", limit=3)
    clash = swarmq("enqueue", str(other), env=services_env)
    assert clash.returncode == 4
    # The one field that differs is named: nobody has to diff the files.
    assert (
        "experiment 'same' exists with a different configuration (dataset.limit differs)"
        in one_error_line(clash.stderr)
    )
    assert counts(database_url) == (1, 4, 0)


def test_services_urls_prints_a_url_psql_takes(services_env: dict[str, str]) -> None:
    """The README says to give the printed URL to psql: libpq refuses SQLAlchemy's `postgresql+psycopg://`."""
    import shutil
    import subprocess

    r = swarmq("services", "urls", env=services_env)
    assert r.returncode == 0, r.stderr
    printed = dict(line.split("=", 1) for line in r.stdout.splitlines())
    url = printed["SWARMQ_DATABASE_URL"]
    assert url.startswith("postgresql://") and url == services_env["SWARMQ_DATABASE_URL"].replace(
        "+psycopg", ""
    )
    if shutil.which("psql") is None:
        pytest.skip("no psql here")
    done = subprocess.run(["psql", url, "-Atc", "SELECT 1"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    # And swarmq itself takes it back.
    again = swarmq("experiments", "--format", "json", env={**services_env, "SWARMQ_DATABASE_URL": url})
    assert again.returncode == 0, again.stderr


def test_resume_publishes_only_jobs_without_outcome(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    cfg = write_config(tmp_path, name="res", limit=3, conditions={"a": {}})
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    w = swarmq("worker", "--cpu", "--burst", "--generator", "tests.fakes:hash_generator", env=services_env)
    assert w.returncode == 0, w.stderr
    r = swarmq("enqueue", str(cfg), env=services_env)
    assert "resumed experiment res: 3 jobs (0 published, 3 already done)" in r.stdout
    assert counts(database_url) == (1, 3, 3)


def test_worker_refuses_bad_models_before_touching_jobs(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    cfg = write_config(
        tmp_path, name="m", limit=1, conditions={"a": {}}, model=str(tmp_path / "missing.gguf")
    )
    r = swarmq("enqueue", str(cfg), env=services_env)  # a typo is refused before anything is written
    assert r.returncode == 5 and counts(database_url) == (0, 0, 0)
    assert f"m: model file not found: {tmp_path / 'missing.gguf'}" in one_error_line(r.stderr)
    assert "--model-on-workers" in one_error_line(r.stderr)
    assert swarmq("enqueue", str(cfg), "--model-on-workers", env=services_env).returncode == 0
    r = swarmq("worker", "--cpu", env=services_env)
    assert r.returncode == 5
    assert f"model file not found: {tmp_path / 'missing.gguf'}" in one_error_line(r.stderr)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    r = swarmq("worker", "--cpu", "--model", str(fake), env=services_env)
    assert r.returncode == 5
    assert "not a GGUF file" in one_error_line(r.stderr)
    r = swarmq("worker", "--gpu", "7", env=services_env)
    assert r.returncode == 5
    assert "--gpu 7: no such GPU on this machine" in one_error_line(r.stderr)
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT status, attempts FROM jobs").fetchall() == [("queued", 0)]


def test_worker_needs_exactly_one_device(services_env: dict[str, str]) -> None:
    r = swarmq("worker", env=services_env)
    assert r.returncode == 2
    assert "choose exactly one of --gpu N or --cpu" in one_error_line(r.stderr)


def test_import_eval_round_trip(tmp_path: Path, services_env: dict[str, str], database_url: str) -> None:
    cfg = {
        "name": "swe",
        "dataset": {"benchmark": "swebench", "limit": 2},
        "model": {"path": "models/stand-in.gguf"},
        "conditions": {"a": {}},
        "success": {"rule": "valid_diff"},
    }
    (tmp_path / "swe.yaml").write_text(json.dumps(cfg))
    assert swarmq("enqueue", str(tmp_path / "swe.yaml"), env=services_env).returncode == 0
    w = swarmq("worker", "--cpu", "--burst", "--generator", "tests.fakes:hash_generator", env=services_env)
    assert w.returncode == 0, w.stderr
    preds = tmp_path / "preds.jsonl"
    e = swarmq(
        "export",
        "swe",
        "--format",
        "swebench",
        "-o",
        str(preds),
        "--condition",
        "a",
        "--replicate",
        "0",
        env=services_env,
    )
    assert e.returncode == 0, e.stderr
    lines = [json.loads(x) for x in preds.read_text().splitlines()]
    assert [set(x) for x in lines] == [{"instance_id", "model_name_or_path", "model_patch"}] * 2
    ids = [x["instance_id"] for x in lines]
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"resolved_ids": ["astropy__astropy-12907"], "unresolved_ids": []}))
    r = swarmq("import-eval", "swe", str(foreign), "--condition", "a", "--replicate", "0", env=services_env)
    assert r.returncode == 4
    assert "report is not for swe/a/r0" in one_error_line(r.stderr)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"resolved_ids": ids[:1], "unresolved_ids": ids[1:]}))
    r = swarmq("import-eval", "swe", str(report), "--condition", "a", "--replicate", "0", env=services_env)
    assert r.returncode == 0, r.stderr
    assert "2 outcomes updated, 1 resolved" in r.stdout
    res = json.loads(swarmq("results", "swe", "--format", "json", env=services_env).stdout)
    # The harness's verdicts sit beside the in-loop rule, never in its rate (the stand-in writes no diffs).
    group = res["groups"][0]
    assert res["success_rule"] == "valid_diff" and (group["resolved"], group["imported"]) == (1, 2)
    assert group["successes"] == 0 and group["success_rate"] == 0.0


def test_status_json_during_a_live_run(tmp_path: Path, services_env: dict[str, str]) -> None:
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    env = {**services_env, "SWARMQ_TEST_GEN_DELAY": "0.4"}
    cfg = write_config(
        tmp_path,
        name="live",
        limit=6,
        conditions={"a": {}, "b": {"agents": 2, "router": "random", "accumulate": True}},
    )
    assert swarmq("enqueue", str(cfg), env=env).returncode == 0
    w = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swarmq",
            "worker",
            "--cpu",
            "--burst",
            "--generator",
            "tests.fakes:hash_generator",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen_partial = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            data = json.loads(swarmq("status", "live", "--format", "json", env=env).stdout)
            t = data["total"]
            assert t["jobs"] == 12 and t["done"] + t["running"] + t["failed"] + t["queued"] == 12
            assert {(s["condition"], s["replicate"]) for s in data["streams"]} == {("a", 0), ("b", 0)}
            if 0 < t["done"] < 12:
                seen_partial = True
                assert data["complete"] is False
            if data["complete"]:
                break
            time.sleep(0.3)
    finally:
        w.wait(timeout=120)
    assert seen_partial
    final = json.loads(swarmq("status", "live", "--format", "json", env=env).stdout)
    assert final["complete"] is True and final["total"]["done"] == 12 and final["total"]["eta_seconds"] == 0.0


def test_score_humaneval_samples_file(tmp_path: Path) -> None:
    from swarmq.benchmarks.humaneval import load_problems

    problems = load_problems()
    samples = tmp_path / "samples.jsonl"
    rows = [
        {"task_id": "HumanEval/0", "completion": problems["HumanEval/0"]["canonical_solution"]},
        {"task_id": "HumanEval/0", "completion": "    return False\n"},
        {"task_id": "HumanEval/2", "completion": problems["HumanEval/2"]["canonical_solution"]},
    ]
    samples.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    r = swarmq("score", "humaneval", str(samples), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [x["passed"] for x in data["results"]] == [True, False, True]
    assert [x["task_id"] for x in data["results"]] == ["HumanEval/0", "HumanEval/0", "HumanEval/2"]
    assert data["pass_at_1"] == pytest.approx((0.5 + 1.0) / 2)
    samples.write_text(json.dumps({"task_id": "HumanEval/999", "completion": ""}) + "\n")
    bad = swarmq("score", "humaneval", str(samples))
    assert bad.returncode == 2
    assert "unknown task_id 'HumanEval/999'" in one_error_line(bad.stderr)


def test_workers_without_gpus_suggest_cpu(services_env: dict[str, str]) -> None:
    import shutil

    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    r = swarmq("workers", "--gpus", "all", env=services_env)
    assert r.returncode == 5  # as `worker --gpu 0` on the same machine: a device problem
    assert "no GPU found on this machine" in one_error_line(r.stderr) and "--cpus N" in r.stderr
    r = swarmq("worker", "--gpu", "0", env=services_env)
    assert r.returncode == 5 and "--gpu 0: no such GPU on this machine" in one_error_line(r.stderr)


def test_usage_errors_and_stream_bound_exports_are_one_line(
    tmp_path: Path, services_env: dict[str, str]
) -> None:
    r = swarmq("import-eval", "x", "report.json", env=services_env)
    assert r.returncode == 2
    assert "Missing option '--condition'" in one_error_line(r.stderr)
    r = swarmq("export", "x", "--format", "swebench", "-o", str(tmp_path / "p.jsonl"), env=services_env)
    assert r.returncode == 2
    assert "--format swebench needs --condition and --replicate" in one_error_line(r.stderr)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.replace("limit: 2", "category_map: {bug: 'py:logic'}"))
    r = swarmq("enqueue", str(cfg), env=services_env)
    assert r.returncode == 2
    assert "dataset.category_map: task type 'py:logic' must be non-empty and hold no ':'" in one_error_line(
        r.stderr
    )


def test_version_verbose_and_completion() -> None:
    from importlib.metadata import version

    r = swarmq("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"swarmq {version('swarmq')}"
    helptext = swarmq("--help").stdout
    for option in ("--version", "--verbose", "-v", "--install-completion", "--show-completion"):
        assert option in helptext, option
    r = swarmq("--show-completion", "bash")
    assert r.returncode == 0 and "_swarmq_completion" in r.stdout


def test_db_status_json_and_exit_code_when_behind(services_env: dict[str, str], pg_admin_url: str) -> None:
    from tests.conftest import fresh_database

    r = swarmq("db", "status", "--format", "json", env=services_env)
    current = json.loads(r.stdout)
    assert r.returncode == 0 and current["up_to_date"] is True and current["current"] == current["head"]
    with fresh_database(pg_admin_url, "swarmq_behind") as url:
        r = swarmq("db", "status", "--format", "json", env={**services_env, "SWARMQ_DATABASE_URL": url})
        assert r.returncode == 3  # SchemaOutOfDate's code: scripts can gate on it
        assert json.loads(r.stdout) == {"current": None, "head": current["head"], "up_to_date": False}
        r = swarmq("db", "status", env={**services_env, "SWARMQ_DATABASE_URL": url})
        assert r.returncode == 3 and "run `swarmq db upgrade`" in r.stdout


def test_db_upgrade_names_a_missing_database(services_env: dict[str, str], database_url: str) -> None:
    if "?" in database_url:
        pytest.skip("embedded server URL")
    missing = database_url.rsplit("/", 1)[0] + "/swarmq_no_such_db"
    r = swarmq("db", "upgrade", env={**services_env, "SWARMQ_DATABASE_URL": missing})
    assert r.returncode == 3
    line = one_error_line(r.stderr)
    assert "database 'swarmq_no_such_db' does not exist" in line and "createdb" in line


def test_enqueue_json_and_status_watch_json_lines(tmp_path: Path, services_env: dict[str, str]) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    cfg = write_config(tmp_path, name="jl", limit=3, conditions={"a": {}})
    r = swarmq("enqueue", str(cfg), "--format", "json", env=services_env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "experiment": "jl",
        "jobs": 3,
        "published": 3,
        "resumed": False,
        "done": 0,
    }
    env = {**services_env, "SWARMQ_TEST_GEN_DELAY": "0.3"}
    w = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swarmq",
            "worker",
            "--cpu",
            "--burst",
            "--generator",
            "tests.fakes:hash_generator",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        r = swarmq("status", "jl", "--watch", "--format", "json", env=env, timeout=120)
    finally:
        w.wait(timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]  # JSON lines: every line one object
    assert len(lines) >= 2 and lines[-1]["complete"] and lines[-1]["total"]["done"] == 3
    assert all(not d["complete"] for d in lines[:-1])


@pytest.mark.model
def test_replay_json_and_its_own_exit_code_when_the_text_differs(
    tmp_path: Path, services_env: dict[str, str], demo_model: Path
) -> None:
    """Replay's "not identical" is a finding with its own exit code (7), distinct from errors (1-6)."""
    from swarmq.errors import REPLAY_DIFFERS

    cfg = write_config(
        tmp_path, name="rp", limit=1, conditions={"a": {}}, model=str(demo_model), max_tokens=8
    )
    assert swarmq("enqueue", str(cfg), env=services_env).returncode == 0
    w = swarmq("worker", "--cpu", "--burst", "--generator", "tests.fakes:hash_generator", env=services_env)
    assert w.returncode == 0, w.stderr
    with psycopg.connect(
        services_env["SWARMQ_DATABASE_URL"].replace("+psycopg", ""), autocommit=True
    ) as conn:
        row = conn.execute("SELECT id FROM jobs").fetchone()
        assert row is not None
        conn.execute("UPDATE outcomes SET completion = 'recorded text'")
    # --force: the stand-in recorded no model sha256; the real model replays the recorded prompt.
    r = swarmq("replay", str(row[0]), "--force", "--format", "json", env=services_env)
    assert r.returncode == REPLAY_DIFFERS, r.stderr
    data = json.loads(r.stdout)
    assert data["identical"] is False and data["recorded"] == "recorded text" and data["job_id"] == row[0]


def test_enqueue_watch_without_a_live_worker_says_why_nothing_moves(
    tmp_path: Path, services_env: dict[str, str]
) -> None:
    """`--watch` with no worker would show `ETA ?` for ever: it says so once, and how to start one."""
    import subprocess
    import sys
    import threading

    from swarmq.report.progress import NO_WORKER_HINT
    from tests.conftest import ROOT

    cfg = write_config(tmp_path, name="lonely", limit=1, conditions={"a": {}})
    p = subprocess.Popen(
        [sys.executable, "-m", "swarmq", "enqueue", str(cfg), "--watch"],
        cwd=ROOT,
        env=services_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = threading.Timer(120, p.kill)  # the watch never ends by itself: end it if the line never comes
    deadline.start()
    found = ""
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if "no live worker" in line:
                found = line
                break
    finally:
        deadline.cancel()
        p.kill()
        p.wait()
    assert found.strip() == NO_WORKER_HINT, found
