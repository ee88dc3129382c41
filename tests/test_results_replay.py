"""Results a reviewer can trust after the fact: D per replicate replayed from Postgres (equal to the live
buffers, and still there when Redis lost them), and rates over the matched set of a partial run.
Real Postgres and Redis, in-process runner, scripted stand-in model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swarmq.model.scripted import ScriptedGenerator
from swarmq.report.results import results
from swarmq.report.stats import context_divergence
from swarmq.swarm.redis import SwarmStore
from swarmq.swarm.state import Stream
from tests.test_runner import drain, rows, runner, setup

pytestmark = pytest.mark.services
SWARM = {
    "baseline": {},
    "swarm": {"agents": 2, "router": "round_robin", "accumulate": True, "max_examples": 2},
}


def test_d_is_per_replicate_and_replayed_from_postgres(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=8, replicates=3, conditions=SWARM)
    assert set(drain(svc, runner(svc, ScriptedGenerator()))) == {"done"}
    ((exp_id, name),) = rows(svc, "SELECT id, name FROM experiments")
    live = []
    for replicate in range(3):
        state = SwarmStore(svc.redis).peek(Stream(exp_id, name, "swarm", replicate), 2)
        assert state is not None and sum(len(b) for b in state.buffers) >= 1
        live.append(context_divergence({i: [e.solution for e in b] for i, b in enumerate(state.buffers)}))
    with svc.sessions() as session:
        spec = results(session, name)["specialization"]
    assert max(live) > 0.0  # the agents hold different examples: D is not trivially 0
    assert "D" not in spec["baseline"]  # nothing accumulates there
    d = spec["swarm"]
    assert d["D_replicates"] == pytest.approx(live)  # every replicate, not replicate 0
    assert d["D"] == pytest.approx(sum(live) / 3)
    assert 0.0 <= d["D_null"] <= 1.0 and d["D_sd"] >= 0.0
    svc.redis.flushdb()  # Redis lost every stream: D does not depend on it
    with svc.sessions() as session:
        assert results(session, name)["specialization"]["swarm"]["D_replicates"] == pytest.approx(live)


def test_rates_compare_conditions_on_the_matched_set(svc: Any, tmp_path: Path) -> None:
    setup(svc, tmp_path, limit=4, conditions=SWARM)
    run = runner(svc, ScriptedGenerator())
    # A partial run: baseline's four jobs finish, swarm's first only.
    for (job_id,) in rows(svc, "SELECT id FROM jobs WHERE condition = 'baseline' ORDER BY position"):
        assert run.run(job_id) == "done"
    ((first,),) = rows(svc, "SELECT id FROM jobs WHERE condition = 'swarm' AND position = 0")
    assert run.run(first) == "done"
    with svc.sessions() as session:
        matched = {g["condition"]: g for g in results(session, "t")["groups"]}
        pooled = {g["condition"]: g for g in results(session, "t", matched=False)["groups"]}
        assert results(session, None)["experiment"] == "t"  # no name: the newest experiment
    assert (matched["baseline"]["judged"], matched["baseline"]["outside"]) == (1, 3)
    assert (matched["swarm"]["judged"], matched["swarm"]["outside"]) == (1, 0)
    assert (pooled["baseline"]["judged"], pooled["baseline"]["outside"]) == (4, 0)
    assert matched["baseline"]["issues"] == 1 and pooled["baseline"]["issues"] == 4  # clustered intervals too


def test_the_dataset_read_is_recorded_with_the_experiment(svc: Any, tmp_path: Path) -> None:
    from swarmq.experiment.dataset import fingerprint, load_issues
    from swarmq.experiment.file import load_config
    from tests.conftest import swarmq
    from tests.helpers import write_config

    path = write_config(tmp_path, name="rec", limit=3)
    assert swarmq("enqueue", str(path)).returncode == 0
    ((record,),) = rows(svc, "SELECT dataset FROM experiments WHERE name = 'rec'")
    cfg = load_config(path)
    assert (
        record["source"] == "bundled" and record["revision"].startswith("sha256:") and record["issues"] == 3
    )
    assert record["fingerprint"] == fingerprint(load_issues(cfg.dataset, cfg.seed))
