"""Prompt tokens and stop strings for a request, exactly as llama-cpp-python's `Llama.create_completion` /
`create_chat_completion` build them: the batching engine decodes with the low-level API, and the same tokens
are what makes its texts comparable with the one-sequence path's and what the prefix cache matches on."""

from __future__ import annotations

from typing import Any

from swarmq.errors import GenerationError
from swarmq.model.base import GenerationRequest


class _Captured(Exception):
    """Raised by the chat-rendering proxy instead of generating: carries what the handler would decode."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


class _RenderOnly:
    """Stands in for `Llama` when its chat handler is called: tokenizing goes to the real one, and the
    `create_completion` the handler ends with hands back the prompt tokens and stop strings instead."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> Any:
        raise _Captured(kwargs)


def render(llm: Any, request: GenerationRequest) -> tuple[list[int], list[str]]:
    """(prompt tokens, stop strings) of ``request`` for the `Llama` ``llm`` (tokenizer, chat handler)."""
    if request.messages is None:
        model = llm._model
        bos = [model.token_cls() if model.token_cls() != -1 else llm.token_bos()]
        if not model.add_bos_token() or bos == [-1]:
            bos = []
        sep = model.token_sep()
        eos = [sep if sep != -1 else llm.token_eos()] if model.add_eos_token() or sep != -1 else []
        body = (
            llm.tokenize(request.prompt.encode("utf-8"), add_bos=False, special=True)
            if request.prompt
            else []
        )
        return bos + body + eos, list(request.stop)
    import llama_cpp

    fmt = llm.chat_format or ""
    handler: Any = (
        llm.chat_handler
        or llm._chat_handlers.get(fmt)
        or llama_cpp.llama_chat_format.get_chat_completion_handler(fmt)
    )
    try:
        handler(
            llama=_RenderOnly(llm),
            messages=[dict(m) for m in request.messages],
            stop=list(request.stop),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
        )
    except _Captured as got:
        prompt, stop = got.kwargs["prompt"], got.kwargs.get("stop") or []
        return list(prompt), [stop] if isinstance(stop, str) else list(stop)
    raise GenerationError("the chat handler did not render a prompt")  # pragma: no cover


def sampler_chain(temperature: float, top_p: float, seed: int) -> Any:
    """`Llama._init_sampler`'s chain (penalties at 1.0 are a no-op and left out), seeded with the job seed."""
    import llama_cpp as lc

    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    if temperature < 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
    elif temperature == 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
    else:
        for s in (
            lc.llama_sampler_init_top_k(40),
            lc.llama_sampler_init_typical(1.0, 1),
            lc.llama_sampler_init_top_p(top_p, 1),
            lc.llama_sampler_init_min_p(0.05, 1),
            lc.llama_sampler_init_temp(temperature),
            lc.llama_sampler_init_dist(seed),
        ):
            lc.llama_sampler_chain_add(chain, s)
    return chain


def put_token(batch: Any, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
    """Row ``i`` of a `llama_batch`: one token of one sequence at ``pos``, with its logits kept or not."""
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq_id
    batch.logits[i] = logits


def token_piece(vocab: Any, token: int, buf: Any) -> bytes:
    """The token's bytes, as `Llama.detokenize` gives them token by token (special tokens as nothing)."""
    import llama_cpp

    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
    return bytes(buf.raw[: max(0, n)])
