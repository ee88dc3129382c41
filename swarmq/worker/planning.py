"""The decisions of one job, as pure functions: route, examples, prompt and request; success by the rule;
and the outcome row that records all of it. The runner does the I/O around them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from swarmq.benchmarks.base import Benchmark, Issue, Prompt, Score
from swarmq.experiment.config import ExperimentConfig
from swarmq.experiment.plan import job_seed, stream_seed
from swarmq.model.base import Generation, GenerationRequest, ModelInfo
from swarmq.model.stops import stop_strings
from swarmq.store.outcomes import FAILED
from swarmq.swarm.routing import RouteDecision, route
from swarmq.swarm.state import StreamState, select_examples


@dataclass(frozen=True)
class JobPlan:
    """What a job sends to the model, and what it was decided from."""

    decision: RouteDecision
    prompt: Prompt
    request: GenerationRequest
    state_version: int


def plan_job(
    bench: Benchmark,
    config: ExperimentConfig,
    condition: str,
    replicate: int,
    position: int,
    issue: Issue,
    state: StreamState,
    model: ModelInfo,
    *,
    sample: int,
) -> JobPlan:
    """Route the job to an agent, show that agent's examples, and build the generation request. The route is
    a function of the stream, the position and the state, so every sample of an issue that sees one state
    goes to one agent; the samples differ by their generation seed. A sample other than 0 never sees an
    example of its own issue (in a relaxed stream it may run after sample 0 fed its agent)."""
    cond = config.conditions[condition]
    decision = route(
        cond.router,
        state.agents,
        issue.task_type,
        seed=stream_seed(config.seed, condition, replicate),
        position=position,
        temperature=cond.router_temperature,
        ucb_c=cond.ucb_c,
    )
    chat = model.chat_template
    buffer = state.buffers[decision.agent_id]
    if sample != 0:
        own = bench.example("", issue, "", chat=chat).problem
        buffer = tuple(e for e in buffer if e.problem != own)
    examples = select_examples(
        buffer,
        issue.task_type,
        max_show=cond.max_show,
        type_filtered=cond.type_filtered,
    )
    prompt = bench.prompt(issue, examples, chat=chat, system=cond.system_prompt)
    gen = config.generation_for(condition)
    request = GenerationRequest(
        prompt=prompt.text,
        messages=prompt.messages,
        max_tokens=gen.max_tokens,
        temperature=gen.temperature,
        top_p=gen.top_p,
        seed=job_seed(gen.seed, replicate, issue.instance_id, sample),
        stop=stop_strings(model.eog_texts, gen.stop, bench.stops(chat)),
        deadline_seconds=gen.deadline_seconds,
    )
    return JobPlan(decision, prompt, request, state.version)


def judge(
    rule: str, bench: Benchmark, issue: Issue, completion: str, *, chat: bool
) -> tuple[bool, Score | None]:
    """Success by the experiment's effective rule (`ExperimentConfig.effective_rule`). ``non_empty`` is the
    stand-in the study used before real scoring."""
    if rule == "non_empty":
        return bool(completion.strip()), None
    result = bench.score(issue, completion, chat=chat, rule=rule)
    return result.success, result


@dataclass(frozen=True)
class Verdict:
    """How a job ended: the generation (empty on error), its error, and the judgement."""

    gen: Generation
    error: str | None
    success: bool
    score: Score | None
    scoring_seconds: float


def outcome_record(
    plan: JobPlan,
    verdict: Verdict,
    model: ModelInfo,
    issue: Issue,
    config: ExperimentConfig,
    *,
    worker: str,
    gpu_index: int | None,
    job_seconds: float,
    gpu_uuid: str | None = None,
) -> dict[str, Any]:
    """The outcome row: everything needed to trust, compare and replay this job."""
    gen, req, score = verdict.gen, plan.request, verdict.score
    return {
        "completion": gen.text,
        "finish_reason": gen.finish_reason,
        "prompt_tokens": gen.prompt_tokens,
        "prompt_cached_tokens": gen.prompt_cached_tokens,
        "prompt_eval_tokens": gen.prompt_eval_tokens,
        "completion_tokens": gen.completion_tokens,
        "load_seconds": model.load_seconds,
        "prompt_seconds": gen.prompt_seconds,
        "generation_seconds": gen.generation_seconds,
        "tokens_per_second": gen.tokens_per_second,
        "slots": model.slots,
        "mean_batch_size": gen.mean_batch_size,
        "job_seconds": job_seconds,
        "worker": worker,
        "gpu_index": gpu_index,
        "gpu_uuid": gpu_uuid,
        "model_name": model.name,
        "model_sha256": model.sha256,
        "llama_cpp_version": model.llama_cpp_version,
        "prompt": plan.prompt.text,
        "prompt_sha256": hashlib.sha256(plan.prompt.text.encode()).hexdigest(),
        "chat": plan.prompt.messages is not None,
        "sampling": {
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "seed": req.seed,
            "stop": list(req.stop),
            "eog_token_ids": list(model.eog_token_ids),
            "n_ctx": model.n_ctx,
        },
        "error": verdict.error,
        "agent_id": plan.decision.agent_id,
        "task_type": issue.task_type,
        "state_version": plan.state_version,
        "example_ids": list(plan.prompt.example_ids),
        "routing": {
            "probabilities": _floats(plan.decision.probabilities),
            "scores": _floats(plan.decision.scores),
        },
        "success": verdict.success,
        "success_rule": config.effective_rule(),
        # FAILED: generation failed, nothing was scored (a job failure); error is kept for scorer failures.
        "score_status": score.status if score else (FAILED if verdict.error else None),
        "score_detail": json.loads(json.dumps(score.detail, default=str)) if score else {},
        "scoring_seconds": verdict.scoring_seconds,
    }


def _floats(values: tuple[float, ...] | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]
