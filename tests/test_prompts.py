from __future__ import annotations

import json

from swarmq.benchmarks.base import Issue
from swarmq.benchmarks.humaneval import STOPS as HUMANEVAL_STOPS
from swarmq.benchmarks.registry import get_benchmark
from swarmq.model.stops import eog_token_ids, stop_strings
from swarmq.swarm.state import Example, select_examples

HUMANEVAL, SWEBENCH = get_benchmark("humaneval"), get_benchmark("swebench")
HE = Issue("HumanEval/1", 'def f(x):\n    """Return x."""\n', "math")
SWE = Issue("django__django-1", "Crash on save.", "logic", "bug", "django/django")


def ex(i: int, t: str = "math") -> Example:
    return Example(str(i), f"def g{i}():\n", f"    return {i}\n", t)


def test_select_examples_recent_first_capped_and_filtered() -> None:
    buf = [ex(1), ex(2, "string"), ex(3), ex(4)]
    assert [e.id for e in select_examples(buf, "math", max_show=2, type_filtered=False)] == ["3", "4"]
    assert [e.id for e in select_examples(buf, "string", max_show=5, type_filtered=True)] == ["2"]
    assert select_examples(buf, "math", max_show=0, type_filtered=False) == []


def test_humaneval_plain_prompt_ends_with_problem_and_shows_examples_in_order() -> None:
    p = HUMANEVAL.prompt(HE, [ex(1), ex(2)], chat=False, system=None)
    assert p.text.endswith(HE.problem)
    assert p.text.index("return 1") < p.text.index("return 2") < p.text.index("def f(x)")
    assert p.messages is None and p.example_ids == ("1", "2")


def test_humaneval_chat_prompt_alternates_roles() -> None:
    p = HUMANEVAL.prompt(HE, [ex(1)], chat=True, system=None)
    assert p.messages is not None
    assert [m["role"] for m in p.messages] == ["system", "user", "assistant", "user"]
    assert json.loads(p.text) == list(p.messages)
    assert HE.problem in p.messages[-1]["content"]


def test_swebench_prompt_asks_for_diff_and_opens_fence() -> None:
    p = SWEBENCH.prompt(SWE, [], chat=False, system=None)
    assert "Repository: django/django" in p.text and "Crash on save." in p.text
    assert p.text.endswith("```diff\n")
    c = SWEBENCH.prompt(
        SWE,
        [Example("9", "Repository: a/b\n\nIssue:\nx\n", "--- a/x\n+++ b/x\n", "logic")],
        chat=True,
        system=None,
    )
    assert c.messages is not None and "unified diff" in c.messages[-1]["content"]
    assert c.messages[2]["content"].startswith("```diff")


def test_example_json_round_trip() -> None:
    e = ex(7)
    assert Example.from_json(e.to_json()) == e


def test_stop_strings_add_to_model_tokens_never_replace() -> None:
    stops = stop_strings(("<eos>", "<end_of_turn>"), ["\n\n\n", ""], HUMANEVAL_STOPS)
    assert stops[:2] == ("<eos>", "<end_of_turn>")
    assert "\n\n\n" in stops and "\ndef " in stops
    assert "" not in stops  # an empty stop string would end every generation at once
    assert len(stops) == len(set(stops))


def test_benchmark_stops() -> None:
    assert HUMANEVAL.stops(chat=False) == HUMANEVAL_STOPS
    assert HUMANEVAL.stops(chat=True) == ()
    assert SWEBENCH.stops(chat=False) == (
        "\n```",
    )  # the plain prompt opened the fence: its close ends the diff


def test_eog_token_ids_from_gguf_metadata() -> None:
    meta = {
        "tokenizer.ggml.eos_token_id": "151645",
        "tokenizer.ggml.eot_token_id": "151645",
        "tokenizer.ggml.eom_token_id": "-1",
    }
    assert eog_token_ids(meta) == (151645,)
    assert eog_token_ids({"tokenizer.ggml.eos_token_id": "1", "tokenizer.ggml.eot_token_id": "106"}) == (
        1,
        106,
    )
    assert eog_token_ids({}, eos_fallback=2) == (2,)
    assert eog_token_ids({}) == ()
