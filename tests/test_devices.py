"""GPUs under an existing CUDA_VISIBLE_DEVICES (issue 14, item 7): `--gpu N` counts the visible GPUs, the worker
pins its GPU by UUID and records the physical index. Pure decisions first; then a real worker process against a
stand-in `nvidia-smi` (this machine has no GPU) that records the physical index in its outcome."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from swarmq.errors import ConfigError, ModelError
from swarmq.worker import devices
from swarmq.worker.devices import choose, pinned_environment, select, visible
from swarmq.worker.gpus import Gpu
from tests.conftest import swarmq
from tests.helpers import write_config

GIB = 1 << 30
GPUS = [Gpu(i, "NVIDIA H100", 80 * GIB, 70 * GIB, f"GPU-{i}{i}{i}a-{i}") for i in range(4)]


def positions(spec: str | None) -> list[int]:
    return [g.index for g in visible(GPUS, spec)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [0, 1, 2, 3]),  # unset: every GPU
        ("2,3", [2, 3]),  # Slurm's allocation
        ("3, 1", [3, 1]),  # CUDA's order is the variable's order
        ("GPU-222a-2,GPU-000", [2, 0]),  # UUIDs, or a unique prefix of one
        ("", []),  # set and empty: no GPU at all
        ("-1", []),
        ("NoDevFiles", []),  # what Slurm sets for a job without GPUs
        ("1,-1,2", [1]),  # CUDA stops at the first entry that is not a device
    ],
)
def test_visible_follows_cuda_visible_devices(spec: str | None, expected: list[int]) -> None:
    assert positions(spec) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("7", "CUDA_VISIBLE_DEVICES=7: no GPU 7 on this machine (found: 0, 1, 2, 3)"),
        ("GPU-9", "no GPU with UUID GPU-9 here"),
        ("GPU-", "4 GPUs with UUID GPU- here"),
        ("1,1", "GPU 1 is named twice"),
        ("MIG-abc", "MIG instance MIG-abc is not supported"),
    ],
)
def test_visible_refuses_what_would_misplace_a_worker(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        visible(GPUS, spec)


def test_choose_and_select_count_visible_gpus() -> None:
    shown = visible(GPUS, "2,3")
    assert choose("all", shown, "2,3") == [0, 1]
    assert choose("1", shown, "2,3") == [1]
    assert select(1, shown, "2,3").index == 3
    with pytest.raises(
        ModelError, match=r"--gpus: no GPU 2 on this machine \(visible: 0 \(GPU 2\), 1 \(GPU 3\);"
    ):
        choose("0,2", shown, "2,3")
    with pytest.raises(ModelError, match=r"--gpu 2: no such GPU on this machine .*CUDA_VISIBLE_DEVICES=2,3"):
        select(2, shown, "2,3")
    with pytest.raises(ConfigError, match="'x' is not a GPU index"):
        choose("0,x", shown)


def test_pinned_environment_names_the_gpu_by_uuid() -> None:
    assert pinned_environment(GPUS[2]) == {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": "GPU-222a-2",
    }
    # An old nvidia-smi without UUIDs: the index, in the PCI bus order NVML numbers by.
    no_uuid = Gpu(2, "old", GIB, GIB)
    assert pinned_environment(no_uuid) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2"}


@pytest.mark.parametrize(("setting", "position", "physical"), [("2,3", 1, 3), (None, 2, 2)])
def test_pin_gpu_respects_and_narrows_the_existing_setting(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, position: int, physical: int
) -> None:
    monkeypatch.setattr(devices, "list_gpus", lambda: list(GPUS))
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", devices.BEFORE_PIN):
        monkeypatch.delenv(name, raising=False)
    if setting is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", setting)
    gpu = devices.pin_gpu(position)
    assert (gpu.index, gpu.uuid) == (physical, GPUS[physical].uuid)
    assert (
        os.environ["CUDA_VISIBLE_DEVICES"] == GPUS[physical].uuid
        and os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    )
    # A worker that re-executes itself (to load the next model) keeps its pinned environment and its --gpu N:
    # it must land on the same GPU, not look for position N among the one GPU it pinned.
    assert devices.pin_gpu(position) == gpu
    assert os.environ["CUDA_VISIBLE_DEVICES"] == GPUS[physical].uuid


def test_no_visible_gpu_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_gpus", lambda: list(GPUS))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ModelError, match="CUDA_VISIBLE_DEVICES= hides all 4"):
        devices.gpu_positions("all")


def fake_nvidia_smi(folder: Path) -> Path:
    """An `nvidia-smi` that answers the worker's --query-gpu with four GPUs (the NVML path finds no driver here)."""
    rows = "\n".join(f"{g.index}, {g.name}, 81559, 71559, {g.uuid}" for g in GPUS)
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\ncat <<'EOF'\n{rows}\nEOF\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.mark.services
def test_worker_records_the_physical_gpu_under_cuda_visible_devices(
    tmp_path: Path, services_env: dict[str, str], database_url: str
) -> None:
    """`worker --gpu 1` under CUDA_VISIBLE_DEVICES=2,3 runs on physical GPU 3, and the outcome says 3."""
    config = write_config(tmp_path, name="gpus", limit=1, conditions={"a": {}})
    assert swarmq("enqueue", str(config), env=services_env).returncode == 0
    bin_dir = fake_nvidia_smi(tmp_path)
    env = {**services_env, "PATH": f"{bin_dir}:{services_env['PATH']}", "CUDA_VISIBLE_DEVICES": "2,3"}
    w = swarmq(
        "worker",
        "--gpu",
        "1",
        "--burst",
        "--slots",
        "1",
        "--generator",
        "tests.fakes:hash_generator",
        env=env,
    )
    assert w.returncode == 0, w.stderr[-2000:]
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        [(gpu_index, gpu_uuid, worker)] = conn.execute(
            "SELECT gpu_index, gpu_uuid, worker FROM outcomes"
        ).fetchall()
    assert (gpu_index, gpu_uuid) == (3, GPUS[3].uuid)
    assert worker.startswith("swarmq-gpu3-"), "the default name carries the physical index"
    w = swarmq("worker", "--gpu", "2", "--burst", env=env)
    assert w.returncode == 5
    assert (
        "--gpu 2: no such GPU on this machine (visible: 0 (GPU 2), 1 (GPU 3); CUDA_VISIBLE_DEVICES=2,3)"
        in w.stderr
    )
