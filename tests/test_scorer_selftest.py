"""A scorer that cannot run stops a worker at start, with one line, before any job is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from swarmq.benchmarks.base import Score
from swarmq.errors import ScorerUnavailable
from swarmq.worker import main
from tests.conftest import swarmq
from tests.helpers import write_config


class Broken:
    def self_test(self) -> str | None:
        return "sandbox: [Errno 2] No such file or directory: '/tmp/x/.venv/bin/python'"


def test_a_failed_self_test_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "BENCHMARKS", {"humaneval": Broken()})
    with pytest.raises(ScorerUnavailable, match=r"^humaneval scorer self-test failed: sandbox: \[Errno 2\]"):
        main.self_test_scorers()


def test_humaneval_self_test_says_what_it_saw(monkeypatch: pytest.MonkeyPatch) -> None:
    from swarmq.benchmarks import humaneval

    monkeypatch.setattr(
        humaneval, "score_humaneval", lambda *a, **k: Score(False, "error", {"stderr_tail": "boom"})
    )
    assert humaneval.HumanEval().self_test() == (
        "HumanEval sandbox self-test: HumanEval/0 canonical error (want passed), wrong error (want failed); boom"
    )


@pytest.mark.sandbox
def test_the_real_scorers_pass_here() -> None:
    main.self_test_scorers()


@pytest.mark.services
def test_worker_without_git_exits_6_before_touching_jobs(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    assert swarmq("enqueue", str(write_config(tmp_path)), env=services_env).returncode == 0
    env = {**services_env, "PATH": str(tmp_path)}  # no git on this PATH
    r = swarmq("worker", "--cpu", "--burst", "--generator", "tests.fakes:hash_generator", env=env)
    assert r.returncode == 6, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("swarmq: error: ")]
    assert (
        errors == [errors[0]]
        and "swebench scorer self-test failed: SWE-bench `applies` needs git" in errors[0]
    )
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        untouched: Any = conn.execute(
            "SELECT bool_and(status IN ('queued', 'pending') AND attempts = 0) FROM jobs"
        )
        assert untouched.fetchone() == (True,)
