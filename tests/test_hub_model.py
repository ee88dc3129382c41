"""`hf:ORG/REPO/FILE.gguf` model references, resolved offline from a pre-populated Hugging Face cache (this
machine cannot reach the hub, and a worker on a machine that has the file must not need to)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import constants

from swarmq.errors import ModelError
from swarmq.keys import model_key
from swarmq.model import hub
from swarmq.model.llama import resolve_model_path
from swarmq.settings import Settings

COMMIT = "a" * 40


def cache_with(tmp_path: Path, repo: str, filename: str) -> Path:
    """The hub cache's own layout: refs/main names a snapshot, which holds the file."""
    root = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    snapshot = root / "snapshots" / COMMIT / filename
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"GGUF" + b"\0" * 60)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache_with(tmp_path, "org/tiny", "tiny-q4.gguf")


def test_a_cached_hub_model_resolves_without_network(offline_cache: Path) -> None:
    path = resolve_model_path("hf:org/tiny/tiny-q4.gguf", Settings())
    assert path.resolve() == offline_cache.resolve() and path.read_bytes().startswith(b"GGUF")
    assert model_key("hf:org/tiny/tiny-q4.gguf") == "tiny-q4.gguf"  # the same queue as a local copy's


def test_a_missing_hub_model_is_one_line_naming_the_file(offline_cache: Path) -> None:
    with pytest.raises(
        ModelError,
        match=r"^model hf:org/tiny/other\.gguf: other\.gguf is not in the local Hugging "
        r"Face cache and could not be downloaded: ",
    ):
        resolve_model_path("hf:org/tiny/other.gguf", Settings())


@pytest.mark.parametrize("ref", ["hf:org/tiny", "hf:org/tiny/weights.bin", "hf://x.gguf"])
def test_malformed_references_are_refused(ref: str) -> None:
    with pytest.raises(ModelError, match=r"expected hf:ORG/REPO/FILE\.gguf"):
        hub.parse(ref)
