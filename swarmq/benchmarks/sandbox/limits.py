"""What a run may use and what it reports: the limits, the result and its status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["passed", "failed", "timeout", "error"]


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits; small values in tests keep hostile code cheap for the test machine."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    """RLIMIT_AS: address space, so a big allocation raises MemoryError instead of swapping the host."""
    file_size_bytes: int = 16 << 20
    """RLIMIT_FSIZE; also bounds each private tmpfs (cwd included). Not stdout/stderr: those are pipes, read
    as the run goes, so a program may print any amount (its tails are kept)."""
    max_processes: int = 64
    """RLIMIT_NPROC; only enforced for the unprivileged run uid (root ignores it)."""
    output_bytes: int = 8 << 10
    """How much of the end of stdout and stderr is kept; the rest is read and dropped."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened; ``isolation`` says which layers were really applied (JSON-safe strings)."""

    status: Status
    returncode: int | None
    stdout_tail: str
    stderr_tail: str
    seconds: float
    isolation: dict[str, str]
