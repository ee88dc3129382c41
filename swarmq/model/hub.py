"""`hf:ORG/REPO/FILE.gguf` model references: a GGUF on the Hugging Face hub, resolved into the local hub
cache.

A worker resolves the reference where it runs (each machine has its own cache); the file's sha256 is computed
at load and recorded with every outcome, as for a local path. The cache is read first, so a machine that has
the file needs no network; one that has not and cannot reach the hub says so, naming the file.
"""

from __future__ import annotations

from pathlib import Path

from swarmq.errors import ModelError

PREFIX = "hf:"


def parse(ref: str) -> tuple[str, str, str | None]:
    """``hf:ORG/REPO/path/in/repo.gguf[@REVISION]`` → (repo id, file path in the repo, revision or None)."""
    body, _, revision = ref.removeprefix(PREFIX).partition("@")
    parts = body.strip("/").split("/")
    if len(parts) < 3 or not all(parts) or not parts[-1].endswith(".gguf"):
        raise ModelError(f"model {ref!r}: expected hf:ORG/REPO/FILE.gguf (optionally @REVISION)")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision or None


def resolve(ref: str) -> Path:
    """The local path of a hub GGUF: from the cache, else downloaded into it."""
    repo, filename, revision = parse(ref)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=True))
    except Exception:  # not cached (or only partly): fetch it
        pass
    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(
            f"model {ref}: {filename} is not in the local Hugging Face cache and could not be "
            f"downloaded: {first}"
        ) from None
