"""Pure decisions of the producer and job runner: publish order, seeds."""

from __future__ import annotations

from swarmq.benchmarks.base import Issue
from swarmq.experiment.plan import job_seed, plan_jobs
from swarmq.keys import model_key, queue_name
from swarmq.queue.broker import kombu_url

ISSUES = [Issue(f"i{n}", "p", "math") for n in range(3)]


def test_publish_order_interleaves_conditions() -> None:
    rows = list(plan_jobs(ISSUES, ["a", "b"], 2))
    assert len(rows) == 3 * 2 * 2
    head = [(r["instance_id"], r["replicate"], r["condition"]) for r in rows[:4]]
    assert head == [("i0", 0, "a"), ("i0", 0, "b"), ("i0", 1, "a"), ("i0", 1, "b")]
    assert [r["seq"] for r in rows] == list(range(12))


def test_every_job_starts_pending_for_the_release_to_queue() -> None:
    rows = list(plan_jobs(ISSUES, ["relaxed", "strict"], 1))
    assert {r["status"] for r in rows} == {"pending"}


def test_job_seed_common_across_conditions_distinct_across_issues() -> None:
    assert job_seed(0, 0, "i1") == job_seed(0, 0, "i1")
    assert job_seed(0, 0, "i1") != job_seed(0, 0, "i2")
    assert job_seed(0, 0, "i1") != job_seed(0, 1, "i1")
    assert 0 <= job_seed(123, 4, "x") < 2**31


def test_queue_per_model_file_name() -> None:
    assert model_key("/data/models/Qwen 1.5B.gguf") == "Qwen_1.5B.gguf"
    assert model_key("models/Qwen 1.5B.gguf") == model_key("/other/Qwen 1.5B.gguf")
    assert queue_name("m.gguf") == "swarmq.m.gguf"
    assert kombu_url("unix:///tmp/r.sock") == "swarmq-redis+socket:///tmp/r.sock"
    assert kombu_url("unix:///tmp/r.sock?db=13") == "swarmq-redis+socket:///tmp/r.sock?virtual_host=13"
    assert kombu_url("redis://h:1/0") == "redis://h:1/0"


def test_per_replicate_orders_are_seeded_permutations_shared_by_conditions() -> None:
    from swarmq.experiment.plan import replicate_orders

    issues = [Issue(f"i{k}", "p", "math") for k in range(8)]
    same = replicate_orders(8, 3, seed=5, independent=False)
    assert same == [list(range(8))] * 3
    orders = replicate_orders(8, 3, seed=5, independent=True)
    assert orders == replicate_orders(8, 3, seed=5, independent=True)  # stable: results are keyed by it
    assert all(sorted(o) == list(range(8)) for o in orders) and len({tuple(o) for o in orders}) == 3
    rows = list(plan_jobs(issues, ["a", "b"], 3, orders))
    for replicate, order in enumerate(orders):
        for condition in ("a", "b"):
            mine = sorted(
                (r for r in rows if r["replicate"] == replicate and r["condition"] == condition),
                key=lambda r: r["position"],
            )
            assert [r["instance_id"] for r in mine] == [f"i{k}" for k in order]
    assert [r["seq"] for r in rows] == list(range(len(rows)))


def test_a_history_router_on_one_task_type_is_warned_about() -> None:
    from swarmq.experiment.plan import design_warnings

    (warning,) = design_warnings({"base": "single", "aff": "affinity"}, {"other"})
    assert warning.startswith(
        "condition 'aff' routes by per-type history (affinity) but every issue has task type"
    )
    assert design_warnings({"aff": "affinity"}, {"math", "logic"}) == []
    assert design_warnings({"r": "random"}, {"other"}) == []
