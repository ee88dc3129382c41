"""Which token ids and strings end a generation (pure): the GGUF's own end-of-generation tokens always,
plus whatever the benchmark and the experiment add."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

EOG_METADATA_KEYS = (
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",
)


def eog_token_ids(metadata: Mapping[str, str], eos_fallback: int | None = None) -> tuple[int, ...]:
    """End-of-generation token ids declared by the GGUF (EOS, EOT, EOM), in a stable order."""
    ids: list[int] = []
    for key in EOG_METADATA_KEYS:
        value = metadata.get(key)
        if (
            value is not None
            and str(value).lstrip("-").isdigit()
            and int(value) >= 0
            and int(value) not in ids
        ):
            ids.append(int(value))
    if not ids and eos_fallback is not None and eos_fallback >= 0:
        ids.append(eos_fallback)
    return tuple(ids)


def stop_strings(eog_texts: Sequence[str], *extra: Sequence[str]) -> tuple[str, ...]:
    """The model's own end-of-generation texts first, then every extra list; extras add, never replace.

    Empty strings are dropped: llama.cpp treats "" as matching at once, which yields empty generations.
    """
    out: list[str] = []
    for group in (eog_texts, *extra):
        for s in group:
            if s and s not in out:
                out.append(s)
    return tuple(out)
