#!/usr/bin/env bash
# Benchmarks on a GPU machine: figure 1 (swarmq vs raw llama-cpp-python) on GPU 0 and figure 7 (1 vs N
# workers, one per GPU), with a GGUF you supply.
#
#   bench/gpu.sh MODEL.gguf [more `python -m bench` options, e.g. --n 40 --max-tokens 256 --repeats 3]
#
# 1. Makes sure the venv's llama-cpp-python can offload to a GPU; if not, builds a CUDA wheel with
#    scripts/llama-wheel.sh (SWARMQ_LLAMA_BACKEND=cuda; cached by its flags) and force-reinstalls it into the
#    venv. To go back to the CPU build later: pip install --force-reinstall --no-deps "$(bash scripts/llama-wheel.sh)".
# 2. Services: SWARMQ_DATABASE_URL / SWARMQ_REDIS_URL when set (the bench creates and drops its own database
#    on that server and uses Redis db SWARMQ_BENCH_REDIS_DB, default 14, which it flushes); else Postgres and
#    Redis on 127.0.0.1 when they answer; else swarmq's embedded servers under SWARMQ_HOME.
# 3. Runs `python -m bench --only e2e,gpuscale --gpu 0 --gpus all --model MODEL.gguf ...`: figure 1's baseline
#    column is llama-cpp-python's raw numbers for the same model, load settings and prompts (gpuscale only
#    with 2 or more GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."

model="${1:-}"
if [ -z "$model" ] || [ ! -f "$model" ]; then
  echo "usage: bench/gpu.sh MODEL.gguf [python -m bench options]  (model file not found: '${model}')" >&2
  exit 2
fi
shift
python="${PYTHON:-.venv/bin/python}"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "bench/gpu.sh: no NVIDIA GPU visible (nvidia-smi -L failed)" >&2
  exit 2
fi
nvidia-smi -L >&2

if ! "$python" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)' 2>/dev/null; then
  echo "bench/gpu.sh: llama-cpp-python here has no GPU offload; building the CUDA wheel (minutes, once)" >&2
  wheel="$(SWARMQ_LLAMA_BACKEND=cuda PYTHON="$python" bash scripts/llama-wheel.sh)"
  "$python" -m pip install -q --force-reinstall --no-deps "$wheel"
  "$python" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)' || {
    echo "bench/gpu.sh: the CUDA build still reports no GPU offload (CUDA toolkit missing?)" >&2
    exit 1
  }
fi
# NVML gives the worker its GPU list and free VRAM (swarmq[gpu]); nvidia-smi is the fallback.
"$python" -c 'import pynvml' 2>/dev/null || echo "bench/gpu.sh: nvidia-ml-py missing; swarmq falls back to nvidia-smi" >&2

figures="e2e"
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  figures="e2e,gpuscale"
fi
exec "$python" -m bench --only "$figures" --gpu 0 --gpus all --model "$model" --n 40 --max-tokens 256 "$@"
