"""A random-weight GGUF of a real architecture and size, for throughput benchmarks where no model can be fetched.

    python -m bench.make_gguf tokenizer DEMO.gguf OUT.gguf        # keep only the demo's tokenizer (a few MB)
    python -m bench.make_gguf model TOKENIZER.gguf OUT.gguf [--shape gemma3-1b|gemma3-270m|tiny]

Decoding speed depends on the shapes and the quantization types of the weights, not on their values, so the
model is gemma-3 (``gemma3`` in llama.cpp) with gemma-3-1B's real hyperparameters, the demo GGUF's tokenizer
(gemma's 262,144 tokens) and the demo's own quantization mix (Q4_K_M as llama.cpp made it for gemma-3:
Q8_0 embeddings, Q5_0 where a row is not a multiple of 256, Q4_K / Q6_K where it is), filled with random
blocks whose scales keep activations small.

Every job must generate exactly ``max_tokens`` tokens, or the K sweep compares different amounts of work. So
the tokens a job could stop on never win: the (tied) embedding rows of every token that is not a plain
text piece (end-of-generation and other control tokens, bytes, unused) and of every token containing a
newline (HumanEval's stop strings all start with one) are zero, which gives them a logit of exactly 0 while
the largest of ~250k random logits is far above 0, so greedy sampling (T=0, what the benchmarks use) never
picks them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ARCH = "gemma3"


@dataclass(frozen=True)
class Shape:
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int


SHAPES = {
    # google/gemma-3-1b-pt config.json: hidden 1152, intermediate 6912, 26 layers, 4 heads, 1 KV head, head_dim 256.
    "gemma3-1b": Shape(1152, 6912, 26, 4, 1, 256),
    # The demo model's own shape (gemma-3-270m): a random twin of it runs as fast as the real one.
    "gemma3-270m": Shape(640, 2048, 18, 4, 1, 256),
    # For CPU checks of the pipeline only.
    "tiny": Shape(128, 512, 2, 4, 1, 64),
}

# Bytes per block and the byte offsets of the f16 scale fields, per ggml type (ggml-common.h).
_BLOCKS = {
    "Q8_0": (32, 34, (0,)),
    "Q5_0": (32, 22, (0,)),
    "Q4_K": (256, 144, (0, 2)),
    "Q6_K": (256, 210, (208,)),
}
# Scale values that keep a weight's magnitude near 0.02 for uniformly random quants (Q4_K: d, dmin).
_SCALES = {"Q8_0": (2.5e-4,), "Q5_0": (2e-3,), "Q4_K": (1e-4, 1e-4), "Q6_K": (2e-5,)}
# The demo GGUF's (llama.cpp Q4_K_M for gemma-3) type per tensor kind; llama.cpp's fallback when a row is not a
# multiple of 256 (Q4_K -> Q5_0, Q6_K -> Q8_0) applies to the new shape.
_KIND_TYPES = {
    "token_embd": "Q8_0",
    "attn_q": "Q4_K",
    "attn_k": "Q4_K",
    "attn_v": "Q6_K",
    "attn_output": "Q4_K",
    "ffn_gate": "Q4_K",
    "ffn_up": "Q4_K",
    "ffn_down": "Q6_K",
}
_FALLBACK = {"Q4_K": "Q5_0", "Q6_K": "Q8_0"}
NORMAL_TOKEN = 1


def _qtype(kind: str, n_in: int) -> str:
    t = _KIND_TYPES[kind]
    return _FALLBACK.get(t, t) if n_in % 256 else t


def _random_blocks(rng: np.random.Generator, qtype: str, n_out: int, n_in: int) -> np.ndarray:
    """``n_out`` rows of ``n_in`` weights as random ``qtype`` blocks (uint8, one row per output)."""
    per_block, nbytes, offsets = _BLOCKS[qtype]
    if n_in % per_block:
        raise ValueError(f"{qtype} needs rows of a multiple of {per_block} weights, got {n_in}")
    blocks = n_out * (n_in // per_block)
    data = np.frombuffer(rng.bytes(blocks * nbytes), dtype=np.uint8).reshape(blocks, nbytes).copy()
    for off, scale in zip(offsets, _SCALES[qtype], strict=True):
        data[:, off : off + 2] = np.frombuffer(np.float16(scale).tobytes(), dtype=np.uint8)
    return data.reshape(n_out, (n_in // per_block) * nbytes)


def _tokenizer_fields(reader: Any) -> list[tuple[str, Any, Any, Any]]:
    """(key, value, type, sub type) of every tokenizer.* field of a GGUF."""
    from gguf import GGUFValueType

    out = []
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == GGUFValueType.ARRAY else None
        out.append((key, field.contents(), vtype, sub))
    return out


def extract_tokenizer(src: Path, out: Path) -> None:
    """A GGUF holding only ``src``'s tokenizer metadata (no tensors)."""
    from gguf import GGUFReader, GGUFWriter

    writer = GGUFWriter(str(out), ARCH)
    for key, value, vtype, sub in _tokenizer_fields(GGUFReader(str(src))):
        writer.add_key_value(key, value, vtype, sub_type=sub)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def masked_tokens(tokens: list[str], types: list[int]) -> np.ndarray:
    """Boolean mask of the tokens greedy decoding must never pick (see the module docstring)."""
    return np.array([t != NORMAL_TOKEN or "\n" in s or "\r" in s for s, t in zip(tokens, types, strict=True)])


def make_model(tokenizer: Path, out: Path, shape_name: str, seed: int = 0) -> dict[str, Any]:
    from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

    shape = SHAPES[shape_name]
    fields = _tokenizer_fields(GGUFReader(str(tokenizer)))
    values = {k: v for k, v, _, _ in fields}
    tokens, types = values["tokenizer.ggml.tokens"], values["tokenizer.ggml.token_type"]
    n_vocab = len(tokens)
    mask = masked_tokens(tokens, types)
    rng = np.random.default_rng(seed)

    w = GGUFWriter(str(out), ARCH)
    w.add_name(f"random-weight {shape_name} (swarmq bench)")
    w.add_context_length(32768)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_key_length(shape.head_dim)
    w.add_value_length(shape.head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1_000_000.0)
    w.add_sliding_window(512)
    w.add_file_type(15)  # MOSTLY_Q4_K_M, as the demo
    w.add_quantization_version(2)
    for key, value, vtype, sub in fields:
        w.add_key_value(key, value, vtype, sub_type=sub)

    def quant(name: str, kind: str, n_out: int, n_in: int) -> np.ndarray:
        qtype = _qtype(kind, n_in)
        data = _random_blocks(rng, qtype, n_out, n_in)
        w.add_tensor(name, data, raw_dtype=GGMLQuantizationType[qtype])
        return data

    def ones(name: str, n: int) -> None:
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    embd = quant("token_embd.weight", "token_embd", n_vocab, shape.n_embd)
    embd[mask] = 0  # zero rows: a logit of exactly 0 (tied output), and a zero input embedding
    ones("output_norm.weight", shape.n_embd)
    q_dim, kv_dim = shape.n_head * shape.head_dim, shape.n_head_kv * shape.head_dim
    for i in range(shape.n_layer):
        b = f"blk.{i}."
        for norm in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            ones(b + norm + ".weight", shape.n_embd)
        ones(b + "attn_q_norm.weight", shape.head_dim)
        ones(b + "attn_k_norm.weight", shape.head_dim)
        quant(b + "attn_q.weight", "attn_q", q_dim, shape.n_embd)
        quant(b + "attn_k.weight", "attn_k", kv_dim, shape.n_embd)
        quant(b + "attn_v.weight", "attn_v", kv_dim, shape.n_embd)
        quant(b + "attn_output.weight", "attn_output", shape.n_embd, q_dim)
        quant(b + "ffn_gate.weight", "ffn_gate", shape.n_ff, shape.n_embd)
        quant(b + "ffn_up.weight", "ffn_up", shape.n_ff, shape.n_embd)
        quant(b + "ffn_down.weight", "ffn_down", shape.n_embd, shape.n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    params = n_vocab * shape.n_embd + shape.n_layer * (
        shape.n_embd * (2 * q_dim + 2 * kv_dim) + 3 * shape.n_embd * shape.n_ff
    )
    return {
        "shape": shape_name,
        **shape.__dict__,
        "n_vocab": n_vocab,
        "masked_tokens": int(mask.sum()),
        "params": params,
        "bytes": out.stat().st_size,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.make_gguf", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokenizer", help="keep only a GGUF's tokenizer metadata")
    t.add_argument("src", type=Path)
    t.add_argument("out", type=Path)
    m = sub.add_parser("model", help="write a random-weight model with a tokenizer GGUF's vocabulary")
    m.add_argument("tokenizer", type=Path)
    m.add_argument("out", type=Path)
    m.add_argument("--shape", choices=sorted(SHAPES), default="gemma3-1b")
    m.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.cmd == "tokenizer":
        extract_tokenizer(args.src, args.out)
        print(f"make_gguf: {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)
        return 0
    info = make_model(args.tokenizer, args.out, args.shape, args.seed)
    print(
        f"make_gguf: {args.out}: {info['shape']}, {info['params'] / 1e9:.2f} B parameters, "
        f"{info['bytes'] / 2**20:.0f} MiB, {info['masked_tokens']} of {info['n_vocab']} tokens never picked, "
        f"{time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
