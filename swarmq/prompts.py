"""Prompt assembly: pure functions from (benchmark, issue, examples) to the text or chat messages sent.

HumanEval continues the function prompt (the model writes the body); SWE-bench asks for a unified diff.
Few-shot examples are the chosen agent's buffer: the context the swarm accumulates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from swarmq.benchmarks.base import Issue

HUMANEVAL_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
"""Function-boundary strings: a base model otherwise runs on to max_tokens after the body."""


@dataclass(frozen=True)
class Example:
    """A few-shot example in an agent's buffer: a solved problem."""

    id: str
    problem: str
    solution: str
    task_type: str

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "p": self.problem, "s": self.solution, "t": self.task_type})

    @staticmethod
    def from_json(text: str | bytes) -> Example:
        d = json.loads(text)
        return Example(id=d["id"], problem=d["p"], solution=d["s"], task_type=d["t"])


@dataclass(frozen=True)
class Prompt:
    text: str
    """What is recorded and, for plain completion, sent."""
    messages: tuple[dict[str, str], ...] | None
    """Chat messages when the model has a chat template."""
    example_ids: tuple[str, ...]


def select_examples(buffer: Sequence[Example], task_type: str, *, max_show: int, type_filtered: bool) -> list[Example]:
    """The most recent ``max_show`` examples (optionally of this task type only), oldest first."""
    pool = [e for e in buffer if e.task_type == task_type] if type_filtered else list(buffer)
    return pool[-max_show:] if max_show > 0 else []


def benchmark_stops(benchmark: str, chat: bool) -> tuple[str, ...]:
    """Extra stop strings a benchmark needs; chat replies are not function continuations."""
    return HUMANEVAL_STOPS if benchmark == "humaneval" and not chat else ()


def build_prompt(
    benchmark: str, issue: Issue, examples: Sequence[Example], *, chat: bool, system: str | None = None
) -> Prompt:
    ids = tuple(e.id for e in examples)
    if benchmark == "humaneval":
        return _humaneval(issue, examples, chat, system, ids)
    if benchmark == "swebench":
        return _swebench(issue, examples, chat, system, ids)
    raise ValueError(f"no prompt template for benchmark {benchmark!r}")


def _humaneval(
    issue: Issue, examples: Sequence[Example], chat: bool, system: str | None, ids: tuple[str, ...]
) -> Prompt:
    if not chat:
        shots = "".join(f"{e.problem}{e.solution.rstrip()}\n\n\n" for e in examples)
        head = "".join(f"# {line}\n" for line in system.splitlines()) + "\n" if system else ""
        return Prompt(head + shots + issue.problem, None, ids)
    sys_msg = system or "You are an expert Python programmer. Complete the function. Reply with Python code only."
    messages: list[dict[str, str]] = [{"role": "system", "content": sys_msg}]
    for e in examples:
        messages.append({"role": "user", "content": f"Complete this function:\n```python\n{e.problem}```"})
        messages.append({"role": "assistant", "content": f"```python\n{e.problem}{e.solution.rstrip()}\n```"})
    messages.append({"role": "user", "content": f"Complete this function:\n```python\n{issue.problem}```"})
    return _chat(messages, ids)


def _swebench_task(issue: Issue) -> str:
    return f"Repository: {issue.repo}\n\nIssue:\n{issue.problem.strip()}\n"


def _swebench(
    issue: Issue, examples: Sequence[Example], chat: bool, system: str | None, ids: tuple[str, ...]
) -> Prompt:
    ask = "Write a patch in unified diff format (git diff) that resolves the issue."
    if not chat:
        parts = [system or f"{ask} Answer with the diff only.", ""]
        for e in examples:
            parts += ["### Task", e.problem, "### Patch", f"```diff\n{e.solution.strip()}\n```", ""]
        parts += ["### Task", _swebench_task(issue), "### Patch", "```diff\n"]
        return Prompt("\n".join(parts), None, ids)
    messages: list[dict[str, str]] = [{"role": "system", "content": system or f"You are a software engineer. {ask}"}]
    for e in examples:
        messages.append({"role": "user", "content": e.problem})
        messages.append({"role": "assistant", "content": f"```diff\n{e.solution.strip()}\n```"})
    messages.append({"role": "user", "content": _swebench_task(issue) + "\n" + ask})
    return _chat(messages, ids)


def _chat(messages: list[dict[str, str]], ids: tuple[str, ...]) -> Prompt:
    return Prompt(json.dumps(messages, ensure_ascii=False), tuple(messages), ids)


def example_problem(benchmark: str, issue: Issue) -> str:
    """What a success stores as the example's problem (the same framing later prompts show)."""
    return _swebench_task(issue) if benchmark == "swebench" else issue.problem
