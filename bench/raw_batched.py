"""The raw baseline of the slots figure: llama-cpp-python's low-level batch API in one process, no swarmq.

``python -m bench.raw_batched SPEC.json OUT.json``. SPEC holds the load settings, ``slots`` and the jobs
swarmq ran (prompt, chat flag, and how many tokens swarmq generated for each). Up to ``slots`` sequences
decode together in one `llama_batch`; a finished sequence's id goes to the next prompt (continuous
batching, as llama.cpp's examples/parallel does). Greedy; each job generates exactly the tokens swarmq
generated for it, so both sides do the same work. With ``slots`` 1 it is the single-sequence raw loop.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("gpu") is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(spec["gpu"])
    import llama_cpp as lc
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    slots, n_ctx = int(spec["slots"]), int(spec["n_ctx"])
    llm = lc.Llama(
        model_path=spec["model"],
        n_ctx=256,
        n_gpu_layers=spec["n_gpu_layers"],
        n_threads=spec["threads"],
        n_threads_batch=spec["threads"],
        verbose=False,
    )
    params = lc.llama_context_params()
    ctypes.pointer(params)[0] = llm.context_params
    params.n_ctx, params.n_batch, params.n_seq_max = n_ctx * slots, min(spec["n_batch"], n_ctx), slots
    params.n_ubatch = min(params.n_batch, 512)
    ctx = lc.llama_init_from_model(llm._model.model, params)
    meta = llm.metadata
    fmt = Jinja2ChatFormatter(
        meta.get("tokenizer.chat_template", ""),
        llm._model.token_get_text(llm.token_eos()),
        llm._model.token_get_text(llm.token_bos()),
    )

    def tokens(job: dict[str, Any]) -> list[int]:
        if job["chat"]:
            r = fmt(messages=json.loads(job["prompt"]))
            return llm.tokenize(r.prompt.encode(), add_bos=not r.added_special, special=True)
        return llm.tokenize(job["prompt"].encode(), add_bos=True, special=True)

    todo = [(tokens(j), int(j["completion_tokens"])) for j in spec["jobs"]]
    n_batch = int(params.n_batch)
    batch = lc.llama_batch_init(n_batch, 0, 1)
    mem = lc.llama_get_memory(ctx)
    sampler = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    lc.llama_sampler_chain_add(sampler, lc.llama_sampler_init_greedy())
    # per slot: [prompt, fed, pos, to generate, generated, next token]
    active: dict[int, list[Any]] = {}
    free, nxt, generated, steps = list(range(slots)), 0, 0, 0
    start = time.perf_counter()
    while nxt < len(todo) or active:
        while free and nxt < len(todo):
            s = free.pop(0)
            lc.llama_memory_seq_rm(mem, s, -1, -1)
            active[s] = [todo[nxt][0], 0, 0, todo[nxt][1], 0, None]
            nxt += 1
        n, outs = 0, []
        for s, a in active.items():  # one token for every decoding sequence
            if a[5] is not None:
                batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.seq_id[n][0], batch.logits[n] = (
                    a[5],
                    a[2],
                    1,
                    s,
                    1,
                )
                outs.append((s, n))
                a[2] += 1
                n += 1
        for s, a in active.items():  # then prompt chunks
            if a[5] is None and n < n_batch:
                take = min(n_batch - n, len(a[0]) - a[1])
                for i in range(a[1], a[1] + take):
                    last = i == len(a[0]) - 1
                    batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.seq_id[n][0] = a[0][i], i, 1, s
                    batch.logits[n] = last
                    if last:
                        outs.append((s, n))
                    n += 1
                a[1] = a[2] = a[1] + take
        batch.n_tokens = n
        if lc.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        steps += 1
        for s, i in outs:
            a = active[s]
            a[5] = lc.llama_sampler_sample(sampler, ctx, i)
            a[4] += 1
            generated += a[4] <= a[3]  # a job swarmq ended at once (end-of-generation) still reads its prompt
            if a[4] >= a[3]:
                del active[s]
                free.append(s)
    seconds = time.perf_counter() - start
    lc.llama_sampler_free(sampler)
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    llm.close()
    return {"seconds": seconds, "generated": generated, "jobs": len(todo), "steps": steps, "slots": slots}


def main(argv: list[str]) -> int:
    Path(argv[1]).write_text(json.dumps(run(json.loads(Path(argv[0]).read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
