"""Where a model reference names a file: a local path (`local_path`), or ``hf:ORG/REPO/FILE.gguf``, a GGUF
on the Hugging Face hub, resolved into the local hub cache (`resolve`).

A relative local path is looked up in the current directory, then by file name in each of `local_dirs`:
the one rule that enqueue's check, workers, replay and `swarmq demo` (which writes its model into the last of
them when it runs outside a checkout) all follow.

A worker resolves the reference where it runs (each machine has its own cache); the file's sha256 is computed
at load and recorded with every outcome, as for a local path. The cache is read first, so a machine that has
the file needs no network; one that has not and cannot reach the hub says so, naming the file.
"""

from __future__ import annotations

from pathlib import Path

from swarmq.errors import ModelError
from swarmq.settings import Settings

PREFIX = "hf:"


def local_dirs(settings: Settings) -> tuple[Path, ...]:
    """Where a relative model path is also looked up by file name, in order: SWARMQ_MODELS_DIR, then
    ``SWARMQ_HOME/models`` (the demo model's home when `swarmq demo` runs outside a checkout)."""
    return (settings.models_dir, settings.home / "models")


def local_path(path: str, settings: Settings) -> Path:
    """A local model path: as given (relative to the current directory) when it exists or is absolute, else
    the first file of that name in `local_dirs`, else as given (the caller says it is missing)."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    found = (d / p.name for d in local_dirs(settings))
    return next((f for f in found if f.exists()), p)


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
