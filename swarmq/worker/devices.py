"""Which GPUs a worker may use, and which one it takes: ``CUDA_VISIBLE_DEVICES`` as already set (by Slurm, a
shared box's admin, a container runtime) is respected, never overwritten with something wider.

``workers --gpus all|0,1`` and ``worker --gpu N`` count GPUs the way CUDA does in this process: N is a
position in the visible list, in ``CUDA_VISIBLE_DEVICES``'s order. The worker then pins its one GPU by UUID
(stable whatever the numbering) and goes on with the physical GPU's NVML index (PCI bus order: what its VRAM
checks, `swarmq workers list` and ``outcomes.gpu_index`` use). Decisions are pure functions of the GPU
listing and the variable; ``gpu_positions`` and ``pin_gpu`` are the I/O edges.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from swarmq.errors import ConfigError, ModelError
from swarmq.worker.gpus import Gpu, list_gpus

ENV = "CUDA_VISIBLE_DEVICES"
BEFORE_PIN = "SWARMQ_CUDA_VISIBLE_DEVICES_BEFORE_PIN"
"""CUDA_VISIBLE_DEVICES as the worker found it (``=`` + the value, or empty when it was unset). A worker that
re-executes itself to load another model inherits its pinned variable; this makes it count ``--gpu N`` in the
list it was started with again, not in the one GPU it pinned."""


def visible(gpus: Sequence[Gpu], cuda_visible_devices: str | None) -> list[Gpu]:
    """The GPUs CUDA shows a process with this ``CUDA_VISIBLE_DEVICES`` (None: unset, all of them), in its
    order.

    Entries are NVML indices (PCI bus order: swarmq sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID``) or UUIDs
    (``GPU-...``, a unique prefix is enough). As in CUDA, an entry that is not a device number (``-1``,
    Slurm's ``NoDevFiles``) ends the list: what came before it is visible. Unlike CUDA, an index or UUID this
    machine does not have, a GPU named twice, or a MIG instance is an error naming it, not a silently shorter
    list."""
    if cuda_visible_devices is None:
        return sorted(gpus, key=lambda g: g.index)
    shown: list[Gpu] = []
    for raw in cuda_visible_devices.split(","):
        entry = raw.strip()
        if entry.upper().startswith("MIG-"):
            raise ConfigError(
                f"{ENV}={cuda_visible_devices}: MIG instance {entry} is not supported; give whole GPUs"
            )
        if entry.upper().startswith("GPU-"):
            found = [g for g in gpus if g.uuid and g.uuid.lower().startswith(entry.lower())]
            if len(found) != 1:
                have = ", ".join(g.uuid for g in gpus if g.uuid) or "none"
                what = "no GPU" if not found else f"{len(found)} GPUs"
                raise ConfigError(
                    f"{ENV}={cuda_visible_devices}: {what} with UUID {entry} here (found: {have})"
                )
            gpu = found[0]
        elif entry.isdigit():
            by_index = {g.index: g for g in gpus}
            if int(entry) not in by_index:
                have = ", ".join(str(i) for i in sorted(by_index)) or "none"
                raise ConfigError(
                    f"{ENV}={cuda_visible_devices}: no GPU {entry} on this machine (found: {have})"
                )
            gpu = by_index[int(entry)]
        else:
            break  # CUDA's rule: the first entry that is not a device hides it and everything after it
        if gpu in shown:
            raise ConfigError(f"{ENV}={cuda_visible_devices}: GPU {entry} is named twice")
        shown.append(gpu)
    return shown


def describe(shown: Sequence[Gpu], cuda_visible_devices: str | None) -> str:
    """The visible GPUs for a message: ``0 (GPU 2), 1 (GPU 3)`` under CUDA_VISIBLE_DEVICES, else ``0, 1``."""
    if cuda_visible_devices is None:
        return ", ".join(str(g.index) for g in shown) or "none"
    listed = ", ".join(f"{n} (GPU {g.index})" for n, g in enumerate(shown)) or "none"
    return f"{listed}; {ENV}={cuda_visible_devices}"


def choose(spec: str, shown: Sequence[Gpu], cuda_visible_devices: str | None = None) -> list[int]:
    """``workers --gpus``: ``all`` or ``0,1,3`` → positions in the visible list (each worker's ``--gpu``). A
    spec that is not GPU indices is bad input (exit 2); a GPU that is not there is a device problem (exit 5),
    as for ``worker --gpu N`` (`select`)."""
    if spec.strip() == "all":
        return list(range(len(shown)))
    wanted = []
    for part in (p.strip() for p in spec.split(",")):
        if not part.isdigit():
            raise ConfigError(f"--gpus: {part!r} is not a GPU index (use 'all' or e.g. 0,1,3)")
        if int(part) >= len(shown):
            raise ModelError(
                f"--gpus: no GPU {part} on this machine (visible: {describe(shown, cuda_visible_devices)})"
            )
        wanted.append(int(part))
    return wanted


def select(position: int, shown: Sequence[Gpu], cuda_visible_devices: str | None) -> Gpu:
    """``worker --gpu N``: the N-th visible GPU (a missing one is a device problem, exit 5, like a model that
    does not fit)."""
    if not 0 <= position < len(shown):
        visible_now = describe(shown, cuda_visible_devices)
        raise ModelError(
            f"--gpu {position}: no such GPU on this machine (visible: {visible_now}); use --cpu without one"
        )
    return shown[position]


def pinned_environment(gpu: Gpu) -> dict[str, str]:
    """What the worker sets before llama.cpp loads so that CUDA shows it exactly ``gpu``: its UUID when the
    listing has one (immune to any numbering), else its index in PCI bus order (NVML's, which CUDA then
    shares)."""
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", ENV: gpu.uuid or str(gpu.index)}


def gpu_positions(spec: str) -> list[int]:
    """``workers --gpus SPEC``: the positions to start one worker on each (``--gpu N`` of each child, which
    inherits this CUDA_VISIBLE_DEVICES). No GPU at all is exit 5, as for ``worker --gpu 0``."""
    setting, found = os.environ.get(ENV), list_gpus()
    shown = visible(found, setting)
    if not shown:
        why = f"{ENV}={setting} hides all {len(found)}" if found else "NVML and nvidia-smi see none"
        raise ModelError(f"no GPU found on this machine ({why}); use --cpus N to run N CPU workers")
    return choose(spec, shown, setting)


def pin_gpu(position: int) -> Gpu:
    """``worker --gpu N``: find the N-th visible GPU and make it the only one CUDA shows this process (call
    before llama_cpp is imported). Returns the physical GPU, to record."""
    before = os.environ.get(BEFORE_PIN)
    setting = os.environ.get(ENV) if before is None else (before[1:] if before else None)
    gpu = select(position, visible(list_gpus(), setting), setting)
    os.environ[BEFORE_PIN] = "" if setting is None else "=" + setting
    os.environ.update(pinned_environment(gpu))
    return gpu
