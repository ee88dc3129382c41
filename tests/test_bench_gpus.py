"""`python -m bench --gpus` counts GPUs as `swarmq workers --gpus` does: positions among the visible ones, so
that under Slurm's CUDA_VISIBLE_DEVICES=2,3 the bench starts two workers, `--gpu 0` and `--gpu 1`."""

from __future__ import annotations

import pytest

from bench.__main__ import _gpus, main
from swarmq.worker import devices
from swarmq.worker.gpus import Gpu

GPUS = [Gpu(i, "NVIDIA H100", 80 << 30, 70 << 30, f"GPU-{i}{i}{i}a-{i}") for i in range(4)]


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(devices, "list_gpus", lambda: list(GPUS))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("visible", "spec", "expected"),
    [(None, "all", [0, 1, 2, 3]), ("2,3", "all", [0, 1]), ("2,3", "1", [1]), (None, "", [])],
)
def test_bench_gpus_are_positions_among_the_visible(
    four_gpus: pytest.MonkeyPatch, visible: str | None, spec: str, expected: list[int]
) -> None:
    if visible is not None:
        four_gpus.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert _gpus(spec) == expected


def test_a_gpu_that_is_not_visible_stops_the_bench(
    four_gpus: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    four_gpus.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert main(["--only", "gpuscale", "--gpus", "2", "--no-save"]) == 2
    assert "--gpus: no GPU 2 on this machine (visible: 0 (GPU 2), 1 (GPU 3)" in capsys.readouterr().err
