"""`plan.plan_end` and `EndPlan.settle`, without any service: what a message's end writes, fails, gives back,
updates, releases and logs, for every kind of attempt and for mixes of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from swarmq.benchmarks.base import Issue, Prompt
from swarmq.experiment.config import ExperimentConfig
from swarmq.experiment.file import load_config
from swarmq.model.base import Generation, GenerationRequest
from swarmq.streams.sync import ExperimentInfo
from swarmq.swarm.routing import RouteDecision
from swarmq.worker.attempt import PENDING, RUNNING, Attempt, Dropped, Failed, Judged, State, Stuck
from swarmq.worker.cancel import CancelKind, Cause
from swarmq.worker.plan import EndPlan, plan_end
from swarmq.worker.planning import JobPlan, Verdict
from tests.helpers import write_config

LOST = Cause(CancelKind.LEASE_LOST, "a renewal found its lease taken or expired")
GIVEN_BACK = Cause(CancelKind.SHUTDOWN, "the worker is stopping")


@dataclass(frozen=True)
class Job:
    """What the plan reads of a claimed job (`queue.jobs.Claimed`), by attribute."""

    id: int
    experiment_id: int = 1
    condition: str = "swarm"
    replicate: int = 0
    sample: int = 0


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> ExperimentConfig:
    return load_config(write_config(Path(tmp_path_factory.mktemp("plan"))))


def judged(config: ExperimentConfig, experiment_id: int = 1, error: str | None = None) -> Judged:
    info = ExperimentInfo(experiment_id, f"e{experiment_id}", config, "key")
    issue = Issue("HumanEval/0", "def f():", "math")
    request = GenerationRequest("p", 8, 0.0, 1.0, 0)
    plan = JobPlan(RouteDecision(1), Prompt("p", None, ()), request, 0)
    if error is None:
        verdict = Verdict(Generation("    return 1\n", "stop", 3, 5, 0.1, 0.4), None, True, None, 0.0)
    else:
        verdict = Verdict(Generation("", "error", 0, 0, 0.0, 0.0), error, False, None, 0.0)
    record = {"score_status": "failed" if error else None, "error": error}
    return Judged(info, issue, plan, verdict, record, started=10.0)


def attempts(*states: State, experiments: tuple[int, ...] = ()) -> list[Attempt]:
    exps = experiments or (1,) * len(states)
    return [Attempt(Job(i + 1, exps[i]), s) for i, s in enumerate(states)]


def summary(plan: EndPlan) -> dict[str, Any]:
    return {
        "finish": [(f.job_id, f.status, f.error) for f in plan.finish],
        "fail": [(f.job_id, f.reason) for f in plan.fail],
        "give_back": list(plan.give_back),
        "updates": [u.job_id for u in plan.updates],
        "releases": list(plan.releases),
        "reports": [r.job_id for r in plan.reports],
        "status": dict(plan.status),
    }


NOTHING = {"finish": [], "fail": [], "give_back": [], "updates": [], "releases": [], "reports": []}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "judged",
            {
                **NOTHING,
                "finish": [(1, "done", None)],
                "updates": [1],
                "releases": [1],
                "reports": [1],
                "status": {1: "done"},
            },
        ),
        (
            "generation error",
            {
                **NOTHING,
                "finish": [(1, "failed", "generation timed out after 1 s")],
                "updates": [1],
                "releases": [1],
                "reports": [1],
                "status": {1: "failed"},
            },
        ),
        (
            "failed",
            {**NOTHING, "fail": [(1, "RuntimeError: boom")], "releases": [1], "status": {1: "failed"}},
        ),
        ("stuck", {**NOTHING, "fail": [(1, "did not stop")], "releases": [1], "status": {1: "failed"}}),
        ("lease lost", {**NOTHING, "status": {1: "dropped"}}),
        ("given back", {**NOTHING, "status": {1: "dropped"}}),
        ("never started", {**NOTHING, "status": {1: "dropped"}}),
    ],
)
def test_one_job_of_each_kind(config: ExperimentConfig, kind: str, expected: dict[str, Any]) -> None:
    state: State = {
        "judged": judged(config),
        "generation error": judged(config, error="generation timed out after 1 s"),
        "failed": Failed("RuntimeError: boom"),
        "stuck": Stuck("did not stop"),
        "lease lost": Dropped(LOST),
        "given back": Dropped(GIVEN_BACK),
        "never started": PENDING,
    }[kind]
    plan = plan_end(attempts(state), now=12.5)
    assert summary(plan) == expected
    dropped = kind in ("lease lost", "given back")
    assert len(plan.lines) == dropped
    if dropped:
        cause = LOST if kind == "lease lost" else GIVEN_BACK
        assert plan.lines == (f"job=1 {cause.kind} ({cause.reason}): this run's result is dropped",)


def test_a_report_says_what_ran_and_what_it_cost(config: ExperimentConfig) -> None:
    (report,) = plan_end(attempts(judged(config)), now=12.5).reports
    assert report.line == "job 1 done: swarm/r0 HumanEval/0 agent 1: success, 5 tokens, 2.5 s"
    assert (report.tokens, report.generation_seconds) == (5, 0.4)
    # A sample other than 0 is named as Celery's task name names it.
    (sampled,) = plan_end([Attempt(Job(1, 1, sample=2), judged(config))], now=12.5).reports
    assert sampled.line.startswith("job 1 done: swarm/r0 HumanEval/0#2 agent 1: success")


def test_a_message_of_every_kind_writes_once_and_releases_each_experiment_once(
    config: ExperimentConfig,
) -> None:
    states = (
        judged(config, 1),
        Failed("RuntimeError: boom"),
        Dropped(LOST),
        judged(config, 2, error="too long"),
        judged(config, 1),
        Dropped(GIVEN_BACK),
    )
    plan = plan_end(attempts(*states, experiments=(1, 1, 3, 2, 1, 4)), now=11.0)
    assert summary(plan) == {
        "finish": [(1, "done", None), (4, "failed", "too long"), (5, "done", None)],
        "fail": [(2, "RuntimeError: boom")],
        "give_back": [],
        "updates": [1, 4, 5],
        "releases": [1, 2],  # in message order; experiments 3 and 4 only lost jobs: nothing to release
        "reports": [1, 4, 5],
        "status": {1: "done", 2: "failed", 3: "dropped", 4: "failed", 5: "done", 6: "dropped"},
    }
    assert [u.experiment_id for u in plan.updates] == [1, 2, 1]
    assert [line.split()[0] for line in plan.lines] == ["job=3", "job=6"]


@pytest.mark.parametrize("stuck_at", [0, 1, 2])
def test_a_stuck_job_abandons_its_message(config: ExperimentConfig, stuck_at: int) -> None:
    """The stuck job fails; the others still open go back to the queue, judged or not: nothing is written."""
    states: list[State] = [judged(config), judged(config), PENDING]
    states[stuck_at] = Stuck("generation timed out after 1 s and did not stop")
    plan = plan_end(attempts(*states, Failed("SystemExit: 0"), Dropped(LOST)), now=11.0)
    stuck_id = stuck_at + 1
    assert summary(plan) == {
        **NOTHING,
        "fail": [(stuck_id, "generation timed out after 1 s and did not stop"), (4, "SystemExit: 0")],
        "give_back": [j for j in (1, 2, 3) if j != stuck_id],
        "releases": [1],
        "status": {1: "dropped", 2: "dropped", 3: "dropped", 4: "failed", 5: "dropped"}
        | {stuck_id: "failed"},
    }


def test_a_running_job_of_a_stuck_message_goes_back(config: ExperimentConfig) -> None:
    plan = plan_end(attempts(Stuck("hung"), RUNNING, judged(config)), now=11.0)
    assert (plan.give_back, plan.finish) == ((2, 3), ())


def test_settle_drops_the_rows_no_longer_ours_and_fails_the_refused(config: ExperimentConfig) -> None:
    states = (judged(config, 1), judged(config, 2), judged(config, 3), judged(config, 1), Failed("E: x"))
    plan = plan_end(attempts(*states, experiments=(1, 2, 3, 1, 5)), now=11.0)
    settled = plan.settle(closed={1}, refused={2: "DataError: NUL"})
    assert summary(settled) == {
        **NOTHING,
        "fail": [(5, "E: x"), (2, "DataError: NUL")],
        "updates": [1],
        "releases": [1, 2, 5],  # 3's only row was lost: no release; 1 had a row written
        "reports": [1],
        "status": {1: "done", 2: "failed", 3: "dropped", 4: "dropped", 5: "failed"},
    }
    assert [line.split()[:3] for line in settled.lines] == [
        ["job=3", "lease", "lost"],
        ["job=4", "lease", "lost"],
    ]


def test_settle_keeps_a_plan_whose_rows_all_closed(config: ExperimentConfig) -> None:
    plan = plan_end(attempts(judged(config), judged(config)), now=11.0)
    assert summary(plan.settle(closed={1, 2}, refused={})) == summary(plan) | {"finish": []}


def test_jobs_closed_before_are_not_written_again_but_released(config: ExperimentConfig) -> None:
    """An error part-way through a message's end: the runner fails what is left; what it closed stays."""
    plan = plan_end(
        attempts(judged(config), Failed("E: bug"), Dropped(LOST), experiments=(1, 2, 3)), now=11.0, closed={1}
    )
    assert summary(plan) == {
        **NOTHING,
        "fail": [(2, "E: bug")],
        "releases": [1, 2],
        "status": {2: "failed", 3: "dropped"},
    }


def test_nothing_closed_nothing_released(config: ExperimentConfig) -> None:
    plan = plan_end(attempts(Dropped(LOST), Dropped(GIVEN_BACK), PENDING), now=11.0)
    assert summary(plan) == {**NOTHING, "status": {1: "dropped", 2: "dropped", 3: "dropped"}}
