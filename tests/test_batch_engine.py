"""The batching engine: its pure decisions (`model.schedule`), then the engine itself on the real demo GGUF
(several job threads at once, slots freed and reused, per-job errors and deadlines, rendering equal to the
one-at-a-time path)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmq.errors import GenerationError, GenerationTimedOut
from swarmq.model.base import Generation, GenerationRequest
from swarmq.model.render import render
from swarmq.model.schedule import (
    TextState,
    default_slots,
    effective_max_tokens,
    kv_bytes_per_token,
    next_prefill,
    prefill_chunk,
)


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        ([], None),
        ([(False, 0), (False, 0)], 0),  # nothing cached: the oldest
        ([(False, 0), (False, 32)], 1),  # the one the cache covers most goes first
        ([(False, 64), (True, 0), (False, 96)], 1),  # a prompt half read goes on
        ([(False, 16), (False, 16)], 0),  # ties: the oldest
    ],
)
def test_next_prefill(waiting: list[tuple[bool, int]], expected: int | None) -> None:
    assert next_prefill(waiting) == expected


def test_prefill_chunks_split_where_llama_eval_does() -> None:
    assert [prefill_chunk(f, 1100, 512) for f in (0, 512, 1024, 1100)] == [512, 512, 76, 0]
    assert prefill_chunk(48, 100, 512) == 52  # after a cached prefix: the rest in one chunk
    # After 416 cached tokens of 519: up to 512, then the same 7-token chunk as the one-pass run.
    assert [prefill_chunk(f, 519, 512) for f in (416, 512)] == [96, 7]


def test_text_state_stops_like_create_completion() -> None:
    s = TextState((b"\ndef ",), max_tokens=10)
    assert not s.push(1, b"    return 1", eog=False)
    assert s.push(2, b"\ndef g", eog=False)  # the stop string is cut off, the token still counted
    assert (s.decoded(), s.finish_reason, len(s.tokens)) == ("    return 1", "stop", 2)
    s = TextState((), max_tokens=2)
    assert not s.push(1, b"a", eog=False) and s.push(2, b"b", eog=False)
    assert (s.decoded(), s.finish_reason) == ("ab", "length")
    s = TextState((), max_tokens=5)
    assert s.push(1, b"", eog=True)  # an end-of-generation token is not counted
    assert (s.decoded(), s.finish_reason, s.tokens) == ("", "stop", [])


def test_text_state_waits_for_a_whole_utf8_character() -> None:
    s = TextState((), max_tokens=1)
    # Ending in the first byte of a 2-byte character: llama-cpp-python defers the max_tokens check one token
    # (its check looks at the last three bytes, so it needs three).
    assert not s.push(1, b"ab" + "é".encode()[:1], eog=False)
    assert s.push(2, "é".encode()[1:], eog=False)
    assert s.decoded() == "abé" and s.finish_reason == "length" and len(s.tokens) == 2


def test_effective_max_tokens() -> None:
    assert effective_max_tokens(64, 10, 2048) == 64
    assert effective_max_tokens(64, 2000, 2048) == 48
    assert effective_max_tokens(0, 48, 2048) == 2000


def test_default_slots_from_free_vram() -> None:
    meta = {
        "general.architecture": "qwen2",
        "qwen2.block_count": 28,
        "qwen2.attention.head_count": 12,
        "qwen2.attention.head_count_kv": 2,
        "qwen2.embedding_length": 1536,
    }
    per_token = kv_bytes_per_token(meta)
    assert per_token == 28 * 2 * (128 + 128) * 2  # 28 KiB: Qwen2.5-1.5B's f16 KV cache per token
    gib = 1 << 30
    assert default_slots(80 * gib, 1 * gib, 8192, per_token) == 32  # capped
    assert default_slots(4 * gib, 1 * gib, 8192, per_token) == 9
    assert default_slots(2 * gib, 1 * gib, 8192, per_token) == 1  # nothing left beyond the reserve
    assert default_slots(80 * gib, 1 * gib, 8192, None) == 1  # header does not say: one at a time
    assert kv_bytes_per_token({"general.architecture": "x"}) is None


REQ = {"max_tokens": 24, "temperature": 0.0, "top_p": 1.0, "seed": 3}
PROMPTS = [
    "def add(a, b):\n",
    "def fib(n):\n",
    "Once upon a time",
    "import os\n\ndef walk(path):\n",
    "# sort\n",
]


@pytest.fixture(scope="module")
def engine(demo_model: Path) -> Iterator[object]:
    from swarmq.model.batched import BatchedGenerator

    gen = BatchedGenerator(demo_model, slots=3, n_ctx=512, threads=1)
    yield gen
    gen.close()


def run_all(engine: object, requests: list[GenerationRequest]) -> list[Generation | BaseException]:
    out: list[Generation | BaseException] = [GenerationError("not run")] * len(requests)

    def one(i: int) -> None:
        try:
            out[i] = engine.generate(requests[i])  # type: ignore[attr-defined]
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


@pytest.mark.model
def test_more_jobs_than_slots_all_finish_sharing_batches(engine: object) -> None:
    out = run_all(engine, [GenerationRequest(prompt=p, **REQ) for p in PROMPTS])  # type: ignore[arg-type]
    assert all(isinstance(g, Generation) for g in out), out
    gens = [g for g in out if isinstance(g, Generation)]
    assert all(g.completion_tokens > 0 and g.finish_reason in ("stop", "length") for g in gens)
    assert all(1.0 <= g.mean_batch_size <= 3.0 for g in gens)  # never more than the 3 slots
    assert max(g.mean_batch_size for g in gens) > 1.5  # they really were decoded together
    assert all(g.generation_seconds > 0 and g.prompt_seconds > 0 for g in gens)
    assert engine.info.slots == 3  # type: ignore[attr-defined]


@pytest.mark.model
def test_a_prompt_too_long_fails_that_job_only(engine: object) -> None:
    long = GenerationRequest(prompt="word " * 600, **REQ)  # type: ignore[arg-type]
    ok = GenerationRequest(prompt=PROMPTS[0], **REQ)  # type: ignore[arg-type]
    out = run_all(engine, [long, ok])
    assert isinstance(out[0], GenerationError) and "exceed context window of 512" in str(out[0])
    assert isinstance(out[1], Generation) and out[1].completion_tokens > 0


@pytest.mark.model
def test_a_deadline_ends_that_generation(engine: object) -> None:
    slow = GenerationRequest(
        prompt=PROMPTS[2], max_tokens=400, temperature=0.0, top_p=1.0, seed=0, deadline_seconds=0.3
    )
    ok = GenerationRequest(prompt=PROMPTS[0], **REQ)  # type: ignore[arg-type]
    started = time.monotonic()
    out = run_all(engine, [slow, ok])
    assert isinstance(out[0], GenerationTimedOut) and str(out[0]) == "generation timed out after 0.3 s"
    assert time.monotonic() - started < 20
    assert isinstance(out[1], Generation)


@pytest.mark.model
def test_prompts_are_rendered_as_the_one_at_a_time_path_does(engine: object, demo_model: Path) -> None:
    """Chat messages through the GGUF's template, plain prompts with the model's BOS: the same prompt tokens
    and stop strings as `LlamaGenerator` (llama-cpp-python's high-level calls) uses."""
    from swarmq.model.llama import LlamaGenerator

    one = LlamaGenerator(demo_model, n_ctx=512, threads=1)
    chat = GenerationRequest(
        prompt="",
        messages=({"role": "user", "content": "Add two numbers in Python."},),
        stop=("\ndef ",),
        **REQ,
    )  # type: ignore[arg-type]
    plain = GenerationRequest(prompt=PROMPTS[1], stop=("\ndef ",), **REQ)  # type: ignore[arg-type]
    got = {}
    for request in (chat, plain):
        a, b = one.generate(request), engine.generate(request)  # type: ignore[attr-defined]
        assert a.prompt_tokens == b.prompt_tokens
        got[request.prompt] = b
    tokens, stops = render(engine._llm, chat)  # type: ignore[attr-defined]
    assert len(tokens) == got[""].prompt_tokens and stops[0] == "\ndef "
    assert got[""].mean_batch_size == 1.0  # alone in the engine


@pytest.mark.model
@pytest.mark.parametrize("verbose", [None, False, True])
def test_llama_cpp_logs_only_when_asked(demo_model: Path, verbose: bool | None) -> None:
    """llama.cpp's own lines (context and KV cache set-up, ...) stay off stderr unless `set_llama_log(True)`
    (`swarmq -v`); None: nobody called it, the default."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom swarmq.model import llama\n"
        + (f"llama.set_llama_log({verbose})\n" if verbose is not None else "")
        + "from swarmq.model.base import GenerationRequest\nfrom swarmq.model.batched import BatchedGenerator\n"
        f"g = BatchedGenerator(Path({str(demo_model)!r}), slots=1, holders=1, n_ctx=256, threads=1)\n"
        "g.generate(GenerationRequest(prompt='def f():', max_tokens=2, temperature=0.0, top_p=1.0, seed=0))\n"
        "g.close()\nprint('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SWARMQ_LLAMA_VERBOSE"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr[-2000:]
    if verbose:
        assert "llama_context" in r.stderr and "llama_kv_cache" in r.stderr
    else:
        assert r.stderr == ""
