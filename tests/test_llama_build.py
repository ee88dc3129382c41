"""`swarmq doctor` and the demo's start check: the installed llama.cpp build judged against this CPU's flags,
from llama.cpp's own system-info line (pure), and the refusal that names the fix."""

from __future__ import annotations

import pytest

from swarmq.errors import ModelError
from swarmq.model.build import (
    PORTABLE_CMAKE_ARGS,
    compiled_features,
    cpu_flags,
    judge,
    native_warning,
    require_runnable,
)

PORTABLE_INFO = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 |"
NATIVE_INFO = PORTABLE_INFO + " AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | AVX512_BF16 = 0 |"
CPUINFO = (
    "processor\t: 0\nflags\t\t: fpu pni ssse3 avx avx2 f16c fma bmi2\nbugs\t\t: spectre\nflags : avx512f\n"
)


def test_features_are_the_ones_set_to_one() -> None:
    assert compiled_features(NATIVE_INFO) >= {"AVX512", "AMX_INT8", "LLAMAFILE"}
    assert "AVX512_BF16" not in compiled_features(NATIVE_INFO)


def test_cpu_flags_come_from_the_first_flags_line() -> None:
    flags = cpu_flags(CPUINFO)
    assert flags is not None and "avx2" in flags and "avx512f" not in flags
    assert cpu_flags("processor : 0\nFeatures : neon\n") is None


def test_a_portable_build_runs_and_warns_nothing() -> None:
    check = judge("0.3.36", PORTABLE_INFO, cpu_flags(CPUINFO))
    assert check.missing == () and check.beyond_portable == ()
    require_runnable(check)
    assert native_warning(check) is None


def test_a_native_build_on_an_older_cpu_is_refused_with_the_reinstall_line() -> None:
    check = judge("0.3.36", NATIVE_INFO, cpu_flags(CPUINFO))
    assert check.missing == ("AMX_INT8", "AVX512", "AVX512_VNNI")
    with pytest.raises(ModelError, match=r"lacks \(AMX_INT8, AVX512, AVX512_VNNI\)") as caught:
        require_runnable(check)
    assert PORTABLE_CMAKE_ARGS in str(caught.value) and "--no-cache-dir" in str(caught.value)
    assert "llama-cpp-python==0.3.36" in str(caught.value)


def test_a_native_build_that_runs_here_is_a_warning() -> None:
    everything = frozenset(
        {"pni", "ssse3", "avx", "avx2", "f16c", "fma", "bmi2", "avx512f", "avx512_vnni", "amx_int8"}
    )
    check = judge("0.3.36", NATIVE_INFO, everything)
    require_runnable(check)
    warning = native_warning(check)
    assert warning is not None and "(AMX_INT8, AVX512, AVX512_VNNI)" in warning


def test_without_cpu_flags_nothing_is_called_missing() -> None:
    assert judge("0.3.36", NATIVE_INFO, None).missing == ()


def test_the_installed_build_runs_on_this_cpu() -> None:
    """The real check, as `swarmq doctor` and the demo run it: the project's portable wheel passes here."""
    from swarmq.model.build import check_build

    check = check_build()
    assert check.missing == () and "AVX2" in check.features, check
