#!/usr/bin/env bash
# Build (once) and print the path of a llama-cpp-python wheel built with known CMake flags.
#
# Why: llama-cpp-python is source-only on PyPI, and pip's wheel cache does not key on CMAKE_ARGS, so a
# natively built wheel (which segfaults in ggml's AMX matmul on some CPUs) could silently be reused.
# We build into a directory named after the flags themselves, with pip's cache disabled.
#   SWARMQ_LLAMA_BACKEND=cpu  (default) portable AVX2 build
#   SWARMQ_LLAMA_BACKEND=cuda GPU build (-DGGML_CUDA=on)
set -euo pipefail
version="${SWARMQ_LLAMA_VERSION:-0.3.36}"
backend="${SWARMQ_LLAMA_BACKEND:-cpu}"
case "$backend" in
  cpu)  flags="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" ;;
  cuda) flags="-DGGML_CUDA=on -DGGML_NATIVE=OFF" ;;
  *) echo "llama-wheel.sh: unknown SWARMQ_LLAMA_BACKEND '$backend' (cpu or cuda)" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"
pytag="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
key="$(printf '%s %s %s' "$version" "$flags" "$pytag" | sha256sum | cut -c1-12)"
dir="${SWARMQ_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/swarmq/wheels}/llama-$backend-$key"
wheel="$(ls "$dir"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$wheel" ]; then
  mkdir -p "$dir"
  echo "building llama-cpp-python $version ($backend: $flags) into $dir; this takes a few minutes" >&2
  CMAKE_ARGS="$flags" FORCE_CMAKE=1 "$python" -m pip wheel --no-cache-dir --no-deps \
    --no-binary llama-cpp-python -w "$dir" "llama-cpp-python==$version" >&2
  wheel="$(ls "$dir"/llama_cpp_python-"$version"-*.whl | head -n1)"
fi
echo "$wheel"
