"""The raw baseline of figure 1: plain llama-cpp-python in one process, model loaded once, then a loop.

``python -m bench.raw_llama SPEC.json OUT.json``. SPEC holds the load settings swarmq's worker used and the
prompts and sampling swarmq recorded in its outcomes, replayed in the same order. Nothing from swarmq is
imported here: this is what a user would write by hand.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("gpu") is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(spec["gpu"])  # as `swarmq worker --gpu N` does
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=spec["model"],
        n_ctx=spec["n_ctx"],
        n_gpu_layers=spec["n_gpu_layers"],
        n_threads=spec["threads"],
        n_threads_batch=spec["threads"],
        n_batch=min(spec["n_batch"], spec["n_ctx"]),
        verbose=False,
    )
    load_seconds = time.perf_counter() - t0
    ctx = llm._ctx.ctx
    calls = []
    loop_start = time.perf_counter()
    for job in spec["jobs"]:
        s = job["sampling"]
        kw = {
            "max_tokens": s["max_tokens"],
            "temperature": s["temperature"],
            "top_p": s["top_p"],
            "seed": s["seed"],
            "stop": s["stop"],
        }
        llama_cpp.llama_perf_context_reset(ctx)
        start = time.perf_counter()
        if job["chat"]:
            out: Any = llm.create_chat_completion(messages=json.loads(job["prompt"]), **kw)
            text = out["choices"][0]["message"]["content"] or ""
        else:
            out = llm.create_completion(job["prompt"], **kw)
            text = out["choices"][0]["text"]
        wall = time.perf_counter() - start
        perf = llama_cpp.llama_perf_context(ctx)
        calls.append(
            {
                "text": text,
                "finish_reason": out["choices"][0].get("finish_reason"),
                "prompt_tokens": out["usage"]["prompt_tokens"],
                "completion_tokens": out["usage"]["completion_tokens"],
                "prompt_seconds": perf.t_p_eval_ms / 1000.0,
                "generation_seconds": perf.t_eval_ms / 1000.0,
                "wall_seconds": wall,
            }
        )
    loop_seconds = time.perf_counter() - loop_start
    llm.close()
    return {
        "load_seconds": load_seconds,
        "loop_seconds": loop_seconds,
        "calls": calls,
        "llama_cpp_version": llama_cpp.__version__,
    }


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    out_path.write_text(json.dumps(run(json.loads(spec_path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
