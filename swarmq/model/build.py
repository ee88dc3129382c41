"""The installed llama.cpp build against this CPU: the instruction sets the library was compiled for
(llama.cpp's own system info) and which of them this CPU lacks.

llama-cpp-python is source-only on PyPI: `pip install` compiles it, for the CPU it runs on unless CMAKE_ARGS
says otherwise, and pip's wheel cache keeps that build whatever CMAKE_ARGS says next time. Such a library
dies with SIGILL on a CPU without those instructions, and a native build segfaults in ggml's AMX matmul on
some Xeons. The features are read in a child process, because loading a library built for instructions this
CPU lacks may kill the process that loads it. The decisions are pure functions of two texts.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from swarmq.errors import ModelError

PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
"""The CPU build `make` and scripts/llama-wheel.sh use: AVX2 with FMA and F16C, nothing newer."""

PORTABLE = frozenset({"SSE3", "SSSE3", "AVX", "AVX2", "BMI2", "F16C", "FMA"})
"""The x86 features the portable build reports (ggml adds BMI2 to an AVX2 build)."""

CPUINFO_FLAG = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AVX512_FP16": "avx512_fp16",
    "AMX_INT8": "amx_int8",
}
"""llama.cpp's name of an x86 feature → the flag /proc/cpuinfo lists for it. Other names (LLAMAFILE, OPENMP,
REPACK, ARM's) are not instruction sets this check knows, and are left alone."""

_PROBE = "import llama_cpp; print(llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())"


@dataclass(frozen=True)
class BuildCheck:
    version: str
    """The installed llama-cpp-python version."""
    features: frozenset[str]
    """What llama.cpp says it was compiled with."""
    missing: tuple[str, ...]
    """Compiled-in instruction sets this CPU lacks: the library will crash here."""
    beyond_portable: tuple[str, ...]
    """Compiled-in instruction sets newer than the portable build's: a native build, for this CPU only."""


def compiled_features(system_info: str) -> frozenset[str]:
    """``CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | ...`` → the names that are 1."""
    return frozenset(m.group(1) for m in re.finditer(r"\b([A-Z][A-Z0-9_]*) = 1\b", system_info))


def cpu_flags(cpuinfo: str) -> frozenset[str] | None:
    """The instruction-set flags of /proc/cpuinfo's first ``flags`` line; None where there is none (not x86,
    or not Linux): the check then cannot say what is missing."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def judge(version: str, system_info: str, flags: frozenset[str] | None) -> BuildCheck:
    features = compiled_features(system_info)
    known = sorted(f for f in features if f in CPUINFO_FLAG)
    missing = () if flags is None else tuple(f for f in known if CPUINFO_FLAG[f] not in flags)
    return BuildCheck(version, features, missing, tuple(f for f in known if f not in PORTABLE))


def reinstall_line(version: str) -> str:
    """The command that replaces the installed build with the portable one (pip's cache bypassed, so a cached
    native wheel is not simply put back)."""
    return (
        f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall --no-deps --no-cache-dir '
        f'--no-binary llama-cpp-python "llama-cpp-python=={version}"'
    )


def check_build(python: str = sys.executable, cpuinfo: Path = Path("/proc/cpuinfo")) -> BuildCheck:
    """Read the installed build's features in a child ``python`` and judge them against this CPU. A child
    killed by SIGILL is itself the answer: the build needs instructions this CPU lacks."""
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise ModelError("llama-cpp-python: importing it took more than 120 s") from None
    if done.returncode == -signal.SIGILL:
        raise ModelError(
            "the installed llama-cpp-python uses instructions this CPU lacks (SIGILL on import); "
            f"reinstall it portable: {reinstall_line(_installed_version())}"
        )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise ModelError(f"llama-cpp-python cannot be imported: {last}")
    version, _, info = done.stdout.partition("\n")
    flags = cpu_flags(cpuinfo.read_text()) if cpuinfo.exists() else None
    return judge(version.strip(), info, flags)


def _installed_version() -> str:
    """From the package metadata, without loading the library."""
    from importlib.metadata import version

    return version("llama-cpp-python")


def require_runnable(check: BuildCheck) -> None:
    """Refuse a build this CPU cannot run, naming the instructions and the fix."""
    if check.missing:
        raise ModelError(
            f"the installed llama-cpp-python {check.version} was built for instructions this CPU lacks "
            f"({', '.join(check.missing)}); reinstall it portable: {reinstall_line(check.version)}"
        )


def native_warning(check: BuildCheck) -> str | None:
    """A line for a build that runs here but only on CPUs like this one (and, with AMX, may segfault)."""
    if not check.beyond_portable:
        return None
    return (
        f"warning: llama-cpp-python {check.version} was built for this CPU's newer instructions "
        f"({', '.join(check.beyond_portable)}): it crashes on machines without them, and native AMX builds "
        f"segfault on some Xeons; the portable build: {reinstall_line(check.version)}"
    )
