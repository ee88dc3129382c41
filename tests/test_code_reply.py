"""Chat replies as completions: real-looking replies (prose, fences, usage examples, helpers) become the
function's body, which is what is scored, exported and kept in a buffer; never the raw reply."""

from __future__ import annotations

import pytest

from swarmq.benchmarks.base import Issue
from swarmq.benchmarks.code_reply import code_blocks, completion_from_reply, unfenced_code
from swarmq.benchmarks.registry import get_benchmark

PROMPT = 'def truncate_number(number: float) -> float:\n    """Return the decimal part of number."""\n'
ENTRY = "truncate_number"
REPLIES = {
    "prose then fence": (
        "Here is the solution:\n```python\ndef truncate_number(number: float) -> float:\n"
        "    return number % 1.0\n```\nIt returns the decimal part.",
        "    return number % 1.0\n",
    ),
    "body only": ("```python\n    return number % 1.0\n```", "    return number % 1.0\n"),
    "unindented body": ("```\nreturn number % 1.0\n```", "    return number % 1.0\n"),
    "unfenced function after prose": (
        "Sure! The decimal part is the remainder modulo one.\n\ndef truncate_number(number: float) -> float:\n"
        '    """Doc."""\n    return number % 1.0\n\nThis works for positive numbers.',
        "    return number % 1.0\n",
    ),
    "usage example first": (
        "Usage:\n```python\nprint(truncate_number(3.5))\n```\nImplementation:\n```python\nimport math\n\n"
        "def truncate_number(number: float) -> float:\n    return number - math.floor(number)\n\n"
        "print(truncate_number(3.5))\n```",
        "    import math\n    return number - math.floor(number)\n",
    ),
    "helper and self-test": (
        "```python\ndef helper(x):\n    return x % 1.0\n\ndef truncate_number(number: float) -> float:\n"
        "    return helper(number)\n\nif __name__ == '__main__':\n    assert truncate_number(3.5) == 0.5\n```",
        "    def helper(x):\n        return x % 1.0\n    return helper(number)\n",
    ),
    "other parameter names": (
        "```py\ndef truncate_number(x):\n    return x % 1.0\n```",
        "\n    pass\n\ndef truncate_number(x):\n    return x % 1.0\n",
    ),
    "one-line function": (
        "```python\ndef truncate_number(number: float) -> float: return number % 1.0\n```",
        "    return number % 1.0\n",
    ),
    "cut by max_tokens inside the fence": (
        "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n",
        "    return number % 1.0\n",
    ),
}


@pytest.mark.parametrize(("reply", "expected"), list(REPLIES.values()), ids=list(REPLIES))
def test_reply_becomes_the_body(reply: str, expected: str) -> None:
    assert completion_from_reply(PROMPT, ENTRY, reply) == expected


def test_blocks_and_unfenced_code() -> None:
    assert code_blocks("a\n```bash\nls\n```\n```python\nx = 1\n```") == ["x = 1\n"]
    assert unfenced_code("Prose first.\nimport os\nx = os.sep\nmore prose here") == "import os\nx = os.sep\n"
    assert unfenced_code("    return 1\n") == "    return 1\n"  # nothing code-like to start from: a bare body


def test_the_buffer_keeps_the_code_never_the_reply() -> None:
    bench = get_benchmark("humaneval")
    issue = Issue("HumanEval/2", PROMPT, "math", data={"prompt": PROMPT, "entry_point": ENTRY, "test": ""})
    reply = REPLIES["prose then fence"][0]
    example = bench.example("7", issue, reply, chat=True)
    assert example.solution == "    return number % 1.0\n" and "Here is" not in example.solution
    shown = bench.prompt(issue, [example], chat=True, system=None)
    assert shown.messages is not None
    assert shown.messages[2]["content"] == f"```python\n{PROMPT}    return number % 1.0\n```"
    assert bench.example("8", issue, "    return 1.0\n", chat=False).solution == "    return 1.0\n"


@pytest.mark.sandbox
@pytest.mark.parametrize("name", list(REPLIES))
def test_every_reply_shape_scores_like_the_code_it_holds(name: str) -> None:
    from swarmq.benchmarks.humaneval import load_problems

    problem = load_problems()["HumanEval/2"]
    issue = Issue("HumanEval/2", problem["prompt"], "math", data=problem)
    verdict = get_benchmark("humaneval").score(issue, REPLIES[name][0], chat=True, rule="scorer")
    assert verdict.status == "passed", verdict.detail
