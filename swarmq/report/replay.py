"""Replay: run a job's recorded prompt again with its recorded sampling parameters and compare the text.

Every outcome stores what is needed to reproduce it (prompt, chat flag, sampling, model sha256, and how many
prompt tokens came from the prefix cache). Replay runs the workers' engine at one slot and, where the job
took a prefix from the cache, evaluates that prefix first and the rest after it, the recorded split. On the
same model file, llama.cpp version and backend it should give the same text at temperature 0; a difference
points at a changed model, library, backend or a nondeterministic kernel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from swarmq.errors import ModelError, SwarmqError, UnknownExperiment
from swarmq.experiment.config import ModelConfig
from swarmq.files import file_sha256
from swarmq.model.base import GenerationRequest, Generator, GeneratorFactory
from swarmq.model.llama import resolve_model_path
from swarmq.settings import Settings, get_settings

CONTEXT_CHARS = 30
"""Characters shown on each side of the first difference."""


@dataclass(frozen=True)
class ReplayReport:
    job_id: int
    model_path: Path
    model_sha256: str
    recorded_sha256: str
    llama_cpp_version: str
    recorded_llama_cpp_version: str
    recorded: str
    replayed: str
    finish_reason: str
    recorded_finish_reason: str | None
    offset: int | None
    """First character offset where the texts differ; None when identical."""
    recorded_context: str
    replayed_context: str
    recorded_slots: int = 1
    """The recording worker's ``--slots``; replay always runs one sequence at a time (slots 1)."""
    recorded_mean_batch: float | None = None
    recorded_cached_tokens: int | None = None
    """Prompt tokens the recorded job took from the prefix cache (None: recorded before the cache existed)."""
    replayed_cached_tokens: int = 0
    prompt_tokens: int = 0

    @property
    def identical(self) -> bool:
        return self.offset is None

    @property
    def sha_matches(self) -> bool:
        return self.model_sha256 == self.recorded_sha256

    def summary(self) -> str:
        """What a user reads: the verdict, then anything that makes a difference expected."""
        lines = []
        if self.identical:
            lines.append(
                f"job {self.job_id}: replay identical ({len(self.replayed)} chars, "
                f"finish {self.finish_reason})"
            )
        else:
            lines += [
                f"job {self.job_id}: replay differs at character {self.offset} "
                f"(recorded {len(self.recorded)} chars, replayed {len(self.replayed)})",
                f"  recorded: {self.recorded_context}",
                f"  replayed: {self.replayed_context}",
            ]
        if self.recorded_slots != 1:  # slots 1 is what replay runs: nothing to say
            batch = f", mean batch {self.recorded_mean_batch:.2f}" if self.recorded_mean_batch else ""
            lines.append(
                f"  note: replay runs slots 1 (one sequence at a time); recorded with slots "
                f"{self.recorded_slots}{batch}: batched llama.cpp kernels may change the last bits of the "
                "logits, so the text can differ where two tokens were nearly tied"
            )
        if self.recorded_cached_tokens:
            lines.append(
                f"  note: recorded with {self.recorded_cached_tokens} of {self.prompt_tokens} prompt tokens "
                f"from the prefix cache; replay evaluated {self.replayed_cached_tokens} first, then the rest "
                "(the same split)"
            )
        if not self.sha_matches:
            lines.append(
                f"  note: model sha256 {short(self.model_sha256)} is not the recorded "
                f"{short(self.recorded_sha256)} (--force)"
            )
        if self.llama_cpp_version != self.recorded_llama_cpp_version:
            lines.append(
                f"  note: llama-cpp-python {self.llama_cpp_version}, recorded with "
                f"{self.recorded_llama_cpp_version}"
            )
        return "\n".join(lines)


def first_difference(a: str, b: str) -> int | None:
    """Offset of the first differing character; the shorter length when one is a prefix of the other."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def context(text_: str, offset: int, width: int = CONTEXT_CHARS) -> str:
    """``text_`` around ``offset``, with ``…`` marking cut ends, as a repr so whitespace shows."""
    start, end = max(0, offset - width), offset + width
    snippet = ("…" if start > 0 else "") + text_[start:end] + ("…" if end < len(text_) else "")
    return repr(snippet)


def short(sha: str) -> str:
    return sha[:12]


def replay(
    session: Session,
    job_id: int,
    model_path: Path | None,
    force: bool,
    generator_factory: GeneratorFactory | None = None,
    *,
    settings: Settings | None = None,
) -> ReplayReport:
    """Re-run job ``job_id``. Refuses a model whose sha256 differs from the recorded one unless ``force``.

    ``model_path`` defaults to the experiment's model (resolved like a worker does); ``generator_factory``
    replaces llama.cpp (tests); the model is loaded on the CPU.
    """
    row = _recorded(session, job_id)
    model_cfg = ModelConfig.model_validate(row["model_config"])
    sampling: dict[str, Any] = dict(row["sampling"] or {})
    if sampling.get("n_ctx"):
        model_cfg = model_cfg.model_copy(update={"n_ctx": int(sampling["n_ctx"])})
    path = model_path or resolve_model_path(model_cfg.path, settings or get_settings())
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    sha, recorded_sha = file_sha256(path), str(row["model_sha256"])
    if sha != recorded_sha and not force:
        raise ModelError(
            f"job {job_id} was generated by model sha256 {short(recorded_sha)}, but {path} has {short(sha)}; "
            "pass --force to replay anyway"
        )
    generator = (generator_factory or _engine)(path, model_cfg, None)
    request = request_of(row["prompt"], bool(row["chat"]), sampling)
    cached = int(row["prompt_cached_tokens"] or 0)
    preload = getattr(generator, "preload", None)  # the engine; a stand-in has no cache to fill
    if cached and preload is not None:
        preload(request, cached)
    gen = generator.generate(request)
    recorded = str(row["completion"] or "")
    offset = first_difference(recorded, gen.text)
    return ReplayReport(
        job_id=job_id,
        model_path=path,
        model_sha256=sha,
        recorded_sha256=recorded_sha,
        llama_cpp_version=generator.info.llama_cpp_version,
        recorded_llama_cpp_version=str(row["llama_cpp_version"]),
        recorded=recorded,
        replayed=gen.text,
        finish_reason=gen.finish_reason,
        recorded_finish_reason=row["finish_reason"],
        offset=offset,
        recorded_context=context(recorded, offset) if offset is not None else "",
        replayed_context=context(gen.text, offset) if offset is not None else "",
        recorded_slots=int(row["slots"] or 1),
        recorded_mean_batch=row["mean_batch_size"],
        recorded_cached_tokens=row["prompt_cached_tokens"],
        replayed_cached_tokens=gen.prompt_cached_tokens,
        prompt_tokens=gen.prompt_tokens,
    )


def request_of(prompt: str, chat: bool, sampling: dict[str, Any]) -> GenerationRequest:
    """The request a worker sent, rebuilt from what the outcome recorded."""
    messages = None
    if chat:
        try:
            messages = tuple(json.loads(prompt))
        except (json.JSONDecodeError, TypeError):
            raise SwarmqError("recorded chat prompt is not a JSON list of messages") from None
    return GenerationRequest(
        prompt=prompt,
        messages=messages,
        max_tokens=int(sampling["max_tokens"]),
        temperature=float(sampling["temperature"]),
        top_p=float(sampling["top_p"]),
        seed=int(sampling["seed"]),
        stop=tuple(sampling.get("stop") or ()),
    )


def _recorded(session: Session, job_id: int) -> dict[str, Any]:
    row = (
        session.execute(
            text(
                "SELECT j.status, e.config->'model' AS model_config, o.id AS outcome_id, o.prompt, o.chat, "
                "o.sampling, o.completion, o.finish_reason, o.model_sha256, o.llama_cpp_version, o.slots, "
                "o.mean_batch_size, o.prompt_cached_tokens "
                "FROM jobs j JOIN experiments e ON e.id = j.experiment_id "
                "LEFT JOIN outcomes o ON o.job_id = j.id "
                "WHERE j.id = :j"
            ),
            {"j": job_id},
        )
        .mappings()
        .first()
    )
    # Exit 4 like an unknown experiment: the id names nothing that can be replayed (yet).
    if row is None:
        raise UnknownExperiment(f"no job with id {job_id}")
    if row["outcome_id"] is None:
        raise UnknownExperiment(f"job {job_id} has no outcome to replay (status: {row['status']})")
    if not row["prompt"]:  # a failure outcome (`store.outcomes.failure_record`): nothing was generated
        raise UnknownExperiment(f"job {job_id} failed without a generation: nothing to replay")
    return dict(row)


def _engine(path: Path, cfg: ModelConfig, gpu: int | None) -> Generator:
    """The workers' engine at one slot, with a holder for a recorded cached prefix (`preload`)."""
    from swarmq.model.batched import BatchedGenerator

    return BatchedGenerator(
        path,
        slots=1,
        holders=1,
        name=cfg.label,
        n_ctx=cfg.n_ctx,
        n_gpu_layers=0,
        threads=cfg.threads,
        n_batch=cfg.n_batch,
    )
