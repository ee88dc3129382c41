"""The prefix cache: its pure data structure (matching, alignment, insertion, eviction), then on the real demo
GGUF a cached job's text against a fresh one-pass run, the recorded split, cancellation, and the switch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmq.benchmarks.humaneval import bundled_problem_rows
from swarmq.errors import GenerationCancelled
from swarmq.model.base import GenerationRequest
from swarmq.model.prefix_cache import MIN_EVAL, PrefixCache, common_prefix, usable
from swarmq.model.schedule import default_holders


def toks(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [([], [1], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2), ([1, 2, 3], [1, 9, 3], 1)],
)
def test_common_prefix(a: list[int], b: list[int], expected: int) -> None:
    assert common_prefix(a, b) == expected


def test_usable_is_aligned_and_leaves_a_token_to_evaluate() -> None:
    assert usable(100, 200, 16) == 96
    assert usable(100, 100, 16) == 80  # an exact repeat still evaluates its last MIN_EVAL tokens or more
    assert usable(64, 80, 16) == 64
    assert usable(64, 79, 16) == 48  # 63 usable at most, rounded down
    assert usable(132, 132, 16) == 112  # not 128: four tokens alone took other kernels and parted texts
    assert usable(15, 200, 16) == 0
    assert usable(15, 200, 1) == 15


def test_match_takes_the_longest_aligned_prefix_over_the_holders() -> None:
    c = PrefixCache([4, 5, 6], align=16)
    assert c.match(toks(100)) is None  # empty cache: a miss
    assert c.insert(toks(40)) is not None
    assert c.insert(toks(70) + [999] * 30) is not None
    m = c.match(toks(90))
    assert m is not None and m.tokens == 64  # 70 shared, rounded down
    assert (c.lookups, c.hits, c.cached_tokens, c.prompt_tokens) == (2, 1, 64, 190)
    assert c.peek(toks(10)) is None  # less than one aligned block


def test_insert_skips_what_a_holder_covers_and_reuses_what_it_extends() -> None:
    c = PrefixCache([4, 5], align=4)
    first = c.insert(toks(32))
    assert first is not None
    assert c.insert(toks(20)) is None  # a prefix of a holder: nothing to copy
    assert c.insert(toks(32)) is None  # the same prompt again
    longer = c.insert(toks(48))
    assert longer is not None and longer.seq_id == first.seq_id  # the shorter one is dominated: overwritten
    assert sorted(len(h.tokens) for h in c.holders) == [0, 48]


def test_eviction_drops_dominated_holders_first_then_the_least_recently_used() -> None:
    c = PrefixCache([1, 2, 3], align=4)
    for start in (1000, 2000, 3000):
        c.insert(toks(32, start))
    # Insertion never makes a holder dominated (it extends in place); shape one by hand, used most recently.
    c.holders[0].tokens = tuple(toks(8, 2000))
    c.holders[0].last_used = 99
    assert c.insert(toks(32, 4000)) is not None
    assert {h.tokens[0] for h in c.holders} == {2000, 3000, 4000} and len(c.holders[0].tokens) == 32
    # No holder dominated: the least recently used goes; a hit makes a holder recent.
    assert c.match(toks(40, 2000)) is not None
    victim = c.insert(toks(32, 5000))
    assert victim is not None and c._holder(victim.seq_id).tokens[0] == 5000
    assert {h.tokens[0] for h in c.holders} == {2000, 4000, 5000}  # 3000 was the least recently used


def test_no_holders_means_no_cache() -> None:
    c = PrefixCache([], align=16)
    assert c.insert(toks(64)) is None and c.match(toks(64)) is None


def test_default_holders_from_memory() -> None:
    mib = 1 << 20
    assert default_holders(4096 * mib, 72 * mib, 16) == 14  # a quarter of 4 GiB in 72 MiB sequences
    assert default_holders(80_000 * mib, 72 * mib, 16) == 16  # capped
    assert default_holders(-5, 72 * mib, 16) == 0  # nothing left
    assert default_holders(1000 * mib, 100 * mib, 16, share=1.0) == 10


REQ = {"max_tokens": 24, "temperature": 0.0, "top_p": 1.0, "seed": 0}
SHOTS = "".join(f"def f{i}(x):\n    return x * {i} + 1\n\n" for i in range(12))
TAILS = ["def add(a, b):\n", "def fib(n):\n", "def add(a, b):\n", "class Stack:\n"]


@pytest.fixture(scope="module")
def cached(demo_model: Path) -> Iterator[object]:
    from swarmq.model.batched import BatchedGenerator

    gen = BatchedGenerator(demo_model, slots=1, holders=2, n_ctx=512, threads=1)
    yield gen
    gen.close()


@pytest.mark.model
def test_a_cached_job_at_one_slot_equals_a_fresh_one_pass_run(cached: object, demo_model: Path) -> None:
    """A job never sees another job's tokens beyond the shared prefix: with a prefix copied from the cache its
    T=0 text is the text of a fresh `Llama` (a new context, the prompt in one pass)."""
    from swarmq.model.llama import LlamaGenerator

    gens = [cached.generate(GenerationRequest(prompt=SHOTS + t, **REQ)) for t in TAILS]  # type: ignore[attr-defined]
    assert gens[0].prompt_cached_tokens == 0
    assert all(g.prompt_cached_tokens > 0 and g.prompt_cached_tokens % 16 == 0 for g in gens[1:])
    assert gens[2].prompt_cached_tokens == (gens[2].prompt_tokens - MIN_EVAL) // 16 * 16  # the exact repeat
    assert all(g.prompt_eval_tokens >= MIN_EVAL for g in gens)
    fresh = LlamaGenerator(demo_model, n_ctx=512, threads=1)
    for tail, g in zip(TAILS, gens, strict=True):
        fresh._llm.reset()  # no reuse on this side: the whole prompt from position 0
        assert fresh.generate(GenerationRequest(prompt=SHOTS + tail, **REQ)).text == g.text, tail


@pytest.mark.model
def test_an_exact_repeat_of_a_short_prompt_equals_a_fresh_run(cached: object, demo_model: Path) -> None:
    """The demo's bare HumanEval/0 prompt (132 tokens), sent again as a baseline replicate does: with only 4
    tokens left to evaluate its text parted from the one-pass run's; `MIN_EVAL` keeps it identical."""
    from swarmq.model.llama import LlamaGenerator

    problem = next(r for r in bundled_problem_rows() if r["task_id"] == "HumanEval/0")["prompt"]
    request = GenerationRequest(prompt=problem, max_tokens=128, temperature=0.0, top_p=1.0, seed=0)
    first = cached.generate(request)  # type: ignore[attr-defined]
    again = cached.generate(request)  # type: ignore[attr-defined]
    assert again.prompt_cached_tokens > 0
    fresh = LlamaGenerator(demo_model, n_ctx=512, threads=1)
    assert again.text == first.text == fresh.generate(request).text


@pytest.mark.model
def test_preload_reproduces_a_recorded_split(cached: object, demo_model: Path) -> None:
    """What `swarmq replay` does for a job that took 64 prompt tokens from the cache: a fresh engine evaluates
    those first, then the rest; the text is the one the busy engine gave."""
    from swarmq.model.batched import BatchedGenerator

    request = GenerationRequest(prompt=SHOTS + "def sub(a, b):\n", **REQ)
    busy = cached.generate(request)  # type: ignore[attr-defined]
    gen = BatchedGenerator(demo_model, slots=1, holders=1, n_ctx=512, threads=1)
    try:
        assert gen.preload(request, 64) == 64
        again = gen.generate(request)
    finally:
        gen.close()
    assert again.prompt_cached_tokens == 64 and again.prompt_eval_tokens == again.prompt_tokens - 64
    assert again.text == busy.text


@pytest.mark.model
def test_the_cancel_signal_ends_a_generation(cached: object) -> None:
    class Signal:
        reason = "lease lost"

        def __init__(self) -> None:
            self.event = threading.Event()

        def is_set(self) -> bool:
            return self.event.is_set()

    signal = Signal()
    long = GenerationRequest(
        prompt="Once upon a time", max_tokens=400, temperature=0.0, top_p=1.0, seed=0, cancel=signal
    )
    got: list[BaseException] = []

    def run() -> None:
        try:
            cached.generate(long)  # type: ignore[attr-defined]
        except BaseException as exc:
            got.append(exc)

    t = threading.Thread(target=run)
    t.start()
    signal.event.set()
    t.join(timeout=30)
    assert len(got) == 1 and isinstance(got[0], GenerationCancelled) and str(got[0]) == "lease lost"
    after = cached.generate(GenerationRequest(prompt="def add(a, b):\n", **REQ))  # type: ignore[attr-defined]
    assert after.completion_tokens > 0  # the slot was given back


@pytest.mark.model
def test_the_switch_off_means_no_holders(demo_model: Path) -> None:
    from swarmq.model.batched import BatchedGenerator

    gen = BatchedGenerator(demo_model, slots=1, holders=0, n_ctx=256, threads=1)
    try:
        request = GenerationRequest(prompt="def add(a, b):\n", **REQ)
        assert [gen.generate(request).prompt_cached_tokens for _ in range(2)] == [0, 0]
        assert gen.info.prefix_holders == 0 and gen.preload(request, 16) == 0
    finally:
        gen.close()


def test_holders_are_chosen_from_memory_and_printed(
    demo_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swarmq.experiment.config import ModelConfig
    from swarmq.worker.loading import choose_holders

    on = ModelConfig(path=str(demo_model), n_ctx=512)
    holders = choose_holders(demo_model, on, None, 2)
    assert 1 <= holders <= 16
    assert f"prefix cache {holders} holders" in capsys.readouterr().out
    off = on.model_copy(update={"prefix_cache": False})
    assert choose_holders(demo_model, off, None, 2) == 0
    assert "prefix cache off (model.prefix_cache: false)" in capsys.readouterr().out
