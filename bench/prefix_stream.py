"""Figure "prefix" parts (b) and (c), in a process of their own: `python -m bench.prefix_stream SPEC OUT`.

(b) A fixed-buffer stream: 3 agents, each with a buffer of 2 solved HumanEval problems, send 8 problems each
(24 jobs, round robin, as swarmq's prompt builder renders them), 64 new tokens each, through the generation
engine at K = 1 and K = 4 with the prefix cache on and off. (c) The K = 1 cache-on texts against fresh
one-pass runs of the same prompts (`Llama`, its cache reset before each).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from swarmq.model.base import Generation, GenerationRequest

AGENTS, EXAMPLES, PER_AGENT = 3, 2, 8


def prompts(examples: int = EXAMPLES, per_agent: int = PER_AGENT) -> list[str]:
    """``AGENTS * per_agent`` prompts: agent a's buffer of ``examples`` solved problems (canonical solutions),
    then one further problem, agents in turn."""
    from bench.workload import humaneval_issues
    from swarmq.benchmarks.base import Example
    from swarmq.benchmarks.humaneval import HumanEval

    issues = list(humaneval_issues())
    bench = HumanEval()
    shots = [
        [
            Example(i.instance_id, i.problem, i.data["canonical_solution"], i.task_type)
            for i in issues[a * examples : (a + 1) * examples]
        ]
        for a in range(AGENTS)
    ]
    todo = issues[AGENTS * examples : AGENTS * examples + AGENTS * per_agent]
    return [
        bench.prompt(issue, shots[k % AGENTS], chat=False, system=None).text for k, issue in enumerate(todo)
    ]


def run_engine(spec: dict[str, Any], texts: list[str], slots: int, holders: int) -> dict[str, Any]:
    from swarmq.model.batched import BatchedGenerator

    engine = BatchedGenerator(
        Path(spec["model"]),
        slots=slots,
        holders=holders,
        n_ctx=spec["n_ctx"],
        threads=spec["threads"],
        n_gpu_layers=spec.get("n_gpu_layers", 0),
    )
    out: list[Generation | None] = [None] * len(texts)
    todo = list(range(len(texts)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            out[i] = engine.generate(
                GenerationRequest(
                    prompt=texts[i], max_tokens=spec["max_tokens"], temperature=0.0, top_p=1.0, seed=0
                )
            )

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    engine.close()
    gens = [g for g in out if g is not None]
    return {
        "slots": slots,
        "holders": holders,
        "seconds": seconds,
        "jobs_s": len(gens) / seconds,
        "prompt_tokens": sum(g.prompt_tokens for g in gens),
        "prompt_eval_tokens": sum(g.prompt_eval_tokens for g in gens),
        "completion_tokens": sum(g.completion_tokens for g in gens),
        "prompt_seconds": sum(g.prompt_seconds for g in gens),
        "texts": [g.text for g in gens],
        "cache": engine.cache_stats(),
    }


def fresh_texts(spec: dict[str, Any], texts: list[str]) -> list[str]:
    from swarmq.model.llama import LlamaGenerator

    one = LlamaGenerator(
        Path(spec["model"]),
        n_ctx=spec["n_ctx"],
        threads=spec["threads"],
        n_gpu_layers=spec.get("n_gpu_layers", 0),
    )
    got = []
    for text in texts:
        one._llm.reset()  # a fresh start: no prefix kept from the previous prompt
        req = GenerationRequest(
            prompt=text, max_tokens=spec["max_tokens"], temperature=0.0, top_p=1.0, seed=0
        )
        got.append(one.generate(req).text)
    return got


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    texts = prompts(spec.get("examples", EXAMPLES), spec.get("per_agent", PER_AGENT))
    runs = []
    for k in spec["slots"]:  # cache off and on side by side for each K
        for holders in (0, spec["holders"]):
            r = run_engine(spec, texts, k, holders)
            runs.append(r)
            print(
                f"prefix stream K={k} holders={holders}: {r['jobs_s']:.3f} jobs/s, "
                f"{r['prompt_eval_tokens']}/{r['prompt_tokens']} prompt tokens evaluated",
                file=sys.stderr,
                flush=True,
            )
    fresh = fresh_texts(spec, texts)
    cached_k1 = next(r for r in runs if r["slots"] == 1 and r["holders"])
    same = sum(a == b for a, b in zip(fresh, cached_k1["texts"], strict=True))
    Path(out_path).write_text(json.dumps({"runs": runs, "identical_k1_vs_fresh": same, "jobs": len(texts)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
