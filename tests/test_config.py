from __future__ import annotations

from pathlib import Path

import pytest

from swarmq.errors import ConfigError
from swarmq.experiment.file import load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
name: t1
dataset:
  benchmark: humaneval
model:
  path: models/x.gguf
conditions:
  baseline: {}
"""


def test_shipped_configs_validate() -> None:
    exp3 = load_config(ROOT / "config" / "exp3.yaml")
    assert exp3.dataset.benchmark == "swebench"
    assert set(exp3.conditions) == {"baseline", "control", "experimental"}
    assert exp3.replicates == 5  # the fewest that estimate the swarm-to-swarm variance
    assert (exp3.generation.max_tokens, exp3.generation.temperature) == (2048, 0.2)
    assert (exp3.model.n_ctx, exp3.model.n_gpu_layers) == (8192, -1)
    assert exp3.conditions["experimental"].router == "affinity"
    assert exp3.conditions["experimental"].router_temperature == 0.5
    demo = load_config(ROOT / "swarmq" / "data" / "demo.yaml")
    assert demo.dataset.benchmark == "humaneval" and len(demo.dataset.instance_ids) == 20


def test_defaults_strict_when_accumulating() -> None:
    cfg = parse_config(MINIMAL + "  swarm: {agents: 3, router: random, accumulate: true}\n")
    assert cfg.conditions["baseline"].effective_ordering == "relaxed"
    assert cfg.conditions["baseline"].in_flight_limit is None
    assert cfg.conditions["swarm"].effective_ordering == "strict"
    assert cfg.conditions["swarm"].in_flight_limit == 1


def test_relaxed_with_limit() -> None:
    cfg = parse_config(MINIMAL + "  s: {accumulate: true, ordering: relaxed, max_in_flight: 4}\n")
    assert cfg.conditions["s"].in_flight_limit == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "bogus: 1\n", "<t>:8: bogus: unknown field"),
        (
            MINIMAL.replace("  baseline: {}", "  baseline: {router: randon}"),
            "<t>:7: conditions.baseline.router: unknown router 'randon'",
        ),
        (MINIMAL + "replicates: 0\n", "<t>:8: replicates: Input should be greater than or equal to 1"),
        (MINIMAL.replace("model:\n  path: models/x.gguf\n", ""), "<t>:1: model: field required"),
        (
            MINIMAL.replace("benchmark: humaneval", "benchmark: mbpp"),
            "<t>:3: dataset.benchmark: unknown benchmark 'mbpp' (choose from humaneval, swebench)",
        ),
        (
            MINIMAL + "success: {rule: resolved}\n",
            "<t>:8: success.rule: 'resolved' cannot decide what the swarm",
        ),
        (
            MINIMAL + "success: {rule: applies}\n",
            "<t>:8: success: rule 'applies' is not a rule of humaneval (choose from scorer, non_empty)",
        ),
        ("name: [unclosed\n", "<t>:2: malformed YAML"),
        ("- just\n- a list\n", "<t>: expected a mapping of fields at the top level"),
    ],
)
def test_errors_name_field_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "<t>")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: experiment file not found"):
        load_config("nope.yaml")


def test_config_hash_is_stable_and_content_sensitive() -> None:
    a, b = parse_config(MINIMAL), parse_config(MINIMAL)
    assert a.config_hash() == b.config_hash()
    c = parse_config(MINIMAL + "seed: 5\n")
    assert c.config_hash() != a.config_hash()


def test_stored_configurations_stay_readable_after_new_refusals() -> None:
    """An experiment enqueued before a refusal existed (here `rule: resolved`, 1,000 agents) is still read by
    workers, the reaper and `results`; the same content as a new file is refused."""
    from pydantic import ValidationError

    from swarmq.experiment.config import ExperimentConfig

    old = {
        "name": "old",
        "dataset": {"benchmark": "swebench"},
        "model": {"path": "m.gguf"},
        "conditions": {"a": {"agents": 1000}},
        "success": {"rule": "resolved"},
    }
    stored = ExperimentConfig.stored(old)
    assert stored.conditions["a"].agents == 1000
    assert (
        stored.effective_rule() == "applies"
    )  # `resolved` learned from the scorer; the scorer is `applies` now
    with pytest.raises(ValidationError):
        ExperimentConfig.model_validate(old)


def test_identity_ignores_operational_guards() -> None:
    base = parse_config(MINIMAL, "<t>")
    guarded = parse_config(MINIMAL + "max_jobs: 5\ngeneration: {timeout_seconds: 3}\n", "<t>")
    assert guarded.config_hash() == base.config_hash()
    assert parse_config(MINIMAL + "replicates: 2\n", "<t>").config_hash() != base.config_hash()


@pytest.mark.parametrize(
    ("condition", "ordering"),
    [
        ({}, "relaxed"),
        ({"accumulate": True}, "strict"),
        ({"router": "affinity"}, "strict"),  # reads the history: relaxed order would make it timing-dependent
        ({"router": "ucb", "agents": 2}, "strict"),
        ({"router": "random", "agents": 2}, "relaxed"),
        ({"router": "greedy", "ordering": "relaxed"}, "relaxed"),  # said explicitly
    ],
)
def test_default_ordering(condition: dict[str, object], ordering: str) -> None:
    from swarmq.experiment.config import ConditionConfig

    assert ConditionConfig.model_validate(condition).effective_ordering == ordering
