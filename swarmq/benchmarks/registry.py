"""The benchmarks swarmq knows, by the name an experiment file uses (``dataset.benchmark``)."""

from __future__ import annotations

from swarmq.benchmarks.base import Benchmark
from swarmq.benchmarks.humaneval import HumanEval
from swarmq.benchmarks.swebench import SWEBench
from swarmq.errors import DatasetError

BENCHMARKS: dict[str, Benchmark] = {"humaneval": HumanEval(), "swebench": SWEBench()}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        choices = ", ".join(sorted(BENCHMARKS))
        raise DatasetError(f"unknown benchmark {name!r} (choose from {choices})") from None
