"""Several models in one experiment: `models:` runs every condition on each, jobs go to their model's queue,
a worker without --model follows the work from one model to the next, and results compare the models on
matched issues. Real Postgres, Redis and worker processes; stand-in generator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from swarmq.experiment.config import ExperimentConfig
from tests.conftest import ROOT, swarmq

BASE = {
    "name": "mm",
    "seed": 3,
    "dataset": {"benchmark": "humaneval", "source": "bundled", "limit": 3},
    "generation": {"max_tokens": 16, "temperature": 0.0},
    "success": {"rule": "non_empty"},
}
TWO = [
    {"path": "models/first.gguf", "name": "first", "n_ctx": 1024},
    {"path": "models/second.gguf", "n_ctx": 1024},
]


def test_models_expand_every_condition_once_per_model() -> None:
    cfg = ExperimentConfig.model_validate(
        {**BASE, "models": TWO, "conditions": {"base": {}, "hot": {"generation": {"temperature": 0.7}}}}
    )
    assert list(cfg.conditions) == ["base@first", "base@second.gguf", "hot@first", "hot@second.gguf"]
    assert (
        cfg.model_for("hot@second.gguf").path == "models/second.gguf"
        and cfg.model.path == "models/first.gguf"
    )
    assert list(cfg.models()) == ["first.gguf", "second.gguf"]
    assert (
        cfg.generation_for("hot@first").temperature == 0.7
        and cfg.generation_for("hot@first").max_tokens == 16
    )
    assert cfg.generation_for("base@first").temperature == 0.0
    # Stored and read back, the expanded form is what it is: no second expansion, the same identity.
    again = ExperimentConfig.stored(cfg.canonical_json())
    assert list(again.conditions) == list(cfg.conditions) and again.config_hash() == cfg.config_hash()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"model": TWO[0], "models": TWO}, "give model (one) or models (a list), not both"),
        ({"models": [TWO[0], TWO[0]]}, "models need distinct names"),
        ({"models": []}, "models must be a non-empty list"),
        ({"models": TWO, "conditions": {"a": {"model": TWO[1]}}}, "condition 'a' sets model: with models:"),
        (
            {
                "model": TWO[0],
                "conditions": {"a": {"model": {**TWO[1], "n_ctx": 256}, "generation": {"max_tokens": 300}}},
            },
            "condition 'a': max_tokens (300)",
        ),
    ],
)
def test_model_settings_mistakes_are_refused(extra: dict, message: str) -> None:
    data = {**BASE, "conditions": {"a": {}}, **extra}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExperimentConfig.model_validate(data)


@pytest.mark.services
def test_a_two_model_experiment_runs_with_a_worker_that_follows_the_work(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    path = tmp_path / "mm.yaml"
    path.write_text(yaml.safe_dump({**BASE, "models": TWO, "conditions": {"base": {}}}))
    e = swarmq("enqueue", str(path), "--model-on-workers", env=services_env)  # stand-in workers need no file
    assert e.returncode == 0, e.stderr
    assert "publishing 6 jobs to swarmq.first.gguf, swarmq.second.gguf" in e.stderr  # each model's own queue
    # One worker, no --model: it serves the first model, then starts afresh on the second, then stops.
    w = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmq",
            "worker",
            "--cpu",
            "--burst",
            "--generator",
            "tests.fakes:hash_generator",
            "--name",
            "follower",
        ],
        cwd=ROOT,
        env=services_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert w.returncode == 0, w.stderr[-3000:]
    assert "restarting on the next model with jobs" in w.stderr
    # One line per finished job, by default (`-q` silences them).
    lines = [line for line in w.stdout.splitlines() if line.startswith("job ")]
    assert len(lines) == 6 and all(" tokens, " in line and line.endswith(" s") for line in lines), w.stdout
    assert any(" done: base@second.gguf/r0 HumanEval/" in line for line in lines)
    # A clean exit leaves the worker listed as stopped, not live (then lost).
    listed = json.loads(swarmq("workers", "list", "--format", "json", env=services_env).stdout)
    assert [w["state"] for w in listed["workers"] if w["name"].startswith("follower")] == ["stopped"]
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        rows = conn.execute(
            "SELECT j.condition, j.model_key, j.status, o.model_name FROM jobs j JOIN outcomes o ON o.job_id = j.id "
            "ORDER BY j.condition, j.position"
        ).fetchall()
    assert [(c, k, s, m) for c, k, s, m in rows] == [("base@first", "first.gguf", "done", "first")] * 3 + [
        ("base@second.gguf", "second.gguf", "done", "second.gguf")
    ] * 3
    res = json.loads(swarmq("results", "mm", "--by", "model", "--format", "json", env=services_env).stdout)
    assert [(g["model"], g["jobs"], g["done"]) for g in res["groups"]] == [
        ("first.gguf", 3, 3),
        ("second.gguf", 3, 3),
    ]
    (comparison,) = res["comparisons"]  # the two models, matched on the same issues
    assert (comparison["a"], comparison["b"], comparison["pairs"]) == ("base@first", "base@second.gguf", 3)


def test_workers_that_follow_the_work_spread_over_the_models() -> None:
    from swarmq.worker.loading import pick_model

    pending = [("a.gguf", 10), ("b.gguf", 10)]
    assert pick_model(pending, {}) == "a.gguf"  # a tie: the oldest experiment's model
    assert pick_model(pending, {"a.gguf": 1}) == "b.gguf"  # the next worker takes the other one
    assert pick_model([("a.gguf", 30), ("b.gguf", 10)], {"a.gguf": 1}) == "a.gguf"  # 15 per worker beats 10
    assert pick_model([("a.gguf", 30), ("b.gguf", 10)], {"a.gguf": 3}) == "b.gguf"  # 7.5 per worker


@pytest.mark.services
def test_celery_cli_knows_the_model_queues(tmp_path: Path, services_env: dict[str, str]) -> None:
    path = tmp_path / "mm.yaml"
    path.write_text(yaml.safe_dump({**BASE, "name": "purge", "models": TWO, "conditions": {"base": {}}}))
    assert swarmq("enqueue", str(path), "--model-on-workers", env=services_env).returncode == 0
    purge = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "swarmq.queue.broker", "purge", "-f"],
        cwd=ROOT,
        env=services_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert purge.returncode == 0, purge.stderr[-2000:]
    assert "Purged 6 messages from 3 known task queues" in purge.stdout, purge.stdout


@pytest.mark.services
def test_a_model_that_cannot_load_is_named_and_other_work_goes_on(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    from tests.helpers import write_config

    bad = write_config(
        tmp_path, name="bad", limit=3, conditions={"a": {}}, model=str(tmp_path / "missing.gguf")
    )
    assert swarmq("enqueue", str(bad), "--model-on-workers", env=services_env).returncode == 0
    good = write_config(
        tmp_path, name="good", limit=2, conditions={"a": {}}
    )  # fewer jobs: bad is tried first
    assert swarmq("enqueue", str(good), env=services_env).returncode == 0
    w = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmq",
            "worker",
            "--cpu",
            "--burst",
            "--generator",
            "tests.fakes:checking_generator",
        ],
        cwd=ROOT,
        env=services_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert (
        f"experiment bad: model file not found: {tmp_path / 'missing.gguf'}; serving other work instead"
        in w.stderr
    )
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        statuses = dict(
            conn.execute(
                "SELECT e.name, string_agg(j.status, ',') FROM jobs j JOIN experiments e "
                "ON e.id = j.experiment_id GROUP BY e.name"
            ).fetchall()
        )
    assert statuses == {"bad": "queued,queued,queued", "good": "done,done"}
    # With nothing else left, the bad model ends the worker: exit 5, naming the experiment.
    assert w.returncode == 5, w.stderr[-2000:]
    assert "swarmq: error: experiment bad: model file not found" in w.stderr
