"""The GGUF header reader: the trained context is read without llama.cpp, skipping arrays of any kind."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from swarmq.errors import ModelError
from swarmq.model.gguf import metadata, trained_context


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(path: Path, kvs: list[bytes]) -> Path:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))
    return path


def test_trained_context_after_arrays_of_strings_and_numbers(tmp_path: Path) -> None:
    tokens = struct.pack("<IQ", 8, 3) + _s("<bos>") + _s("a") + _s("<eos>")  # array of strings
    scores = struct.pack("<IQ", 6, 3) + struct.pack("<fff", 0.0, -1.0, -2.0)  # array of f32
    path = write_gguf(
        tmp_path / "m.gguf",
        [
            _s("general.architecture") + struct.pack("<I", 8) + _s("llama"),
            _s("tokenizer.ggml.tokens") + struct.pack("<I", 9) + tokens,
            _s("tokenizer.ggml.scores") + struct.pack("<I", 9) + scores,
            _s("llama.context_length") + struct.pack("<II", 4, 4096),
            _s("tokenizer.ggml.eos_token_id") + struct.pack("<II", 4, 2),
        ],
    )
    assert trained_context(path) == 4096
    meta = metadata(path)
    assert meta["tokenizer.ggml.tokens"] is None and meta["tokenizer.ggml.eos_token_id"] == 2


def test_no_context_key_and_not_a_gguf(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", [_s("general.architecture") + struct.pack("<I", 8) + _s("gemma3")])
    assert trained_context(path) is None
    (tmp_path / "x.gguf").write_bytes(b"PK\x03\x04")
    with pytest.raises(ModelError, match=r"x.gguf: unreadable GGUF header \(not a GGUF file\)"):
        trained_context(tmp_path / "x.gguf")


def test_a_truncated_header_is_one_model_error(tmp_path: Path) -> None:
    """A download cut short after the magic bytes: a ModelError naming the file (exit 5), not a struct.error."""
    full = write_gguf(tmp_path / "m.gguf", [_s("general.architecture") + struct.pack("<I", 8) + _s("gemma3")])
    for size in (4, 10, 30):
        cut = tmp_path / f"cut{size}.gguf"
        cut.write_bytes(full.read_bytes()[:size])
        with pytest.raises(ModelError, match=rf"cut{size}.gguf: unreadable GGUF header"):
            trained_context(cut)


@pytest.mark.model
def test_the_demo_model(demo_model: Path) -> None:
    assert trained_context(demo_model) == 32768
