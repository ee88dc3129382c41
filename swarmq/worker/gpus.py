"""GPU discovery: NVML (nvidia-ml-py) first, `nvidia-smi` as a fallback, nothing on a CPU-only machine."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_total: int
    memory_free: int
    uuid: str = ""
    """``GPU-...``: the same inside a container, under any CUDA_VISIBLE_DEVICES (`devices`); "" when
    unknown."""


def list_gpus() -> list[Gpu]:
    return _nvml() or _nvidia_smi()


def _nvml() -> list[Gpu]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound etc.: no driver here
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name, uuid = pynvml.nvmlDeviceGetName(h), pynvml.nvmlDeviceGetUUID(h)
            out.append(Gpu(i, _text(name), int(mem.total), int(mem.free), _text(uuid)))
        return out
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi() -> list[Gpu]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    query = "--query-gpu=index,name,memory.total,memory.free,uuid"
    try:
        text = subprocess.run(
            [exe, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in text.strip().splitlines():
        idx, name, total, free, uuid = (p.strip() for p in line.split(","))
        gpus.append(Gpu(int(idx), name, int(float(total)) << 20, int(float(free)) << 20, uuid))
    return gpus


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
