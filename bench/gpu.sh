#!/usr/bin/env bash
# The GPU check, in one command on a bare GPU box: no network, no pip index, no ccache, only this repository's
# working tree plus the pack that bench/gpu-pack.sh made (carried in bench/gpupack/). Needs Python 3.12,
# nvcc, CMake and ninja there.
#
#   bench/gpu.sh [more `python -m bench` options for both runs]
#
# 1. Unpacks the pack's Python packages into build/gpu/site (PYTHONPATH; swarmq runs from this tree).
# 2. Builds llama.cpp from the pack's trimmed llama-cpp-python sources with CMake + ninja (CUDA for ONE
#    architecture, SWARMQ_CUDA_ARCH, default 90 = H100/H200), into build/gpu/ (kept between runs on the same
#    machine), and puts the libraries into the site's llama_cpp package.
# 3. Makes the benchmark model (bench/make_gguf.py): random weights, gemma-3-1B shape (SWARMQ_GPU_SHAPE),
#    the demo GGUF's tokenizer, every job generates exactly max_tokens tokens (greedy, stop tokens never win).
# 4. Runs the slots sweep (K = SWARMQ_GPU_SLOTS, default 1,2,4,8,16,32), the prefix figure (K = 1 and 16) and
#    then figure 1 on GPU 0, each as its own `python -m bench` run with its own JSON, against embedded PostgreSQL and redis-server (from the pack).
# Everything (JSON, tables, logs, build and step timings) goes to $OUT (default bench/results/gpu).
#
# SWARMQ_GPU_BACKEND=cpu rehearses every step but CUDA on a machine without a GPU (CPU build of the same
# sources, tiny model, no --gpu): that is how it was checked where it was written.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
t0=$SECONDS
backend="${SWARMQ_GPU_BACKEND:-cuda}"
pack="${SWARMQ_GPU_PACK:-bench/gpupack}"
work="${SWARMQ_GPU_WORK:-build/gpu}"
out="${OUT:-bench/results/gpu}"
arch="${SWARMQ_CUDA_ARCH:-90}"
if [ "$backend" = cpu ]; then
  shape="${SWARMQ_GPU_SHAPE:-tiny}" slots="${SWARMQ_GPU_SLOTS:-1,2,4}" n="${SWARMQ_GPU_N:-8}"
  max_tokens="${SWARMQ_GPU_MAX_TOKENS:-16}"
else
  shape="${SWARMQ_GPU_SHAPE:-gemma3-1b}" slots="${SWARMQ_GPU_SLOTS:-1,2,4,8,16,32}" n="${SWARMQ_GPU_N:-32}"
  max_tokens="${SWARMQ_GPU_MAX_TOKENS:-128}"
fi
repeats="${SWARMQ_GPU_REPEATS:-1}"
# The device tool stops a command at 600 s and keeps only what $OUT holds then: each bench run is bounded so
# that the logs and whatever JSON exists are in $OUT before that.
deadline="${SWARMQ_GPU_DEADLINE_S:-570}"
mkdir -p "$out" "$work"
out="$(cd "$out" && pwd)"
work="$(cd "$work" && pwd)"
log="$out/gpu-steps.log"
: > "$log"
say() { printf '[%4ds] %s\n' $((SECONDS - t0)) "$*" | tee -a "$log" >&2; }
die() { say "bench/gpu.sh: $*"; exit 1; }

# --- 0. what is there
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for p in python3.12 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      python="$(command -v "$p")"
      break
    fi
  done
fi
[ -n "$python" ] || die "no Python 3.12 found (the pack's wheels are cp312); set PYTHON"
for f in site.tar.xz llama-src.tar.xz tokenizer.gguf.xz; do
  [ -f "$pack/$f" ] || die "$pack/$f missing: run bench/gpu-pack.sh where there is network and carry $pack"
done
command -v cmake >/dev/null || die "cmake not found"
command -v ninja >/dev/null || die "ninja not found"
cuda_flags=()
if [ "$backend" = cuda ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || die "no NVIDIA GPU visible (nvidia-smi -L failed)"
  # The toolkit root: CUDA_HOME, else where nvcc really lives (it may be a wrapper script on PATH), else
  # /usr/local/cuda. CMake gets the real nvcc, the libraries get that root's lib64 in their RUNPATH.
  cuda_home="${CUDA_HOME:-}"
  if [ -z "$cuda_home" ] && command -v nvcc >/dev/null; then
    cuda_home="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
    [ -e "$cuda_home/include/cuda_runtime.h" ] || cuda_home=""
  fi
  cuda_home="${cuda_home:-/usr/local/cuda}"
  nvcc="$cuda_home/bin/nvcc"
  [ -x "$nvcc" ] && [ -e "$cuda_home/include/cuda_runtime.h" ] || die "no CUDA toolkit found (nvcc; set CUDA_HOME)"
  # ggml-cuda links cuBLAS (cublas_v2.h, libcublas): a toolkit assembled from nvcc + runtime wheels lacks it,
  # and at ~0.5 GB it cannot be carried. Say so before minutes of nvcc, not at the link.
  if [ -z "$(find -L "$cuda_home" -maxdepth 4 -name cublas_v2.h -print -quit 2>/dev/null)" ] \
     || [ -z "$(find -L "$cuda_home" -maxdepth 4 -name 'libcublas.so*' -print -quit 2>/dev/null)" ]; then
    die "the CUDA toolkit in $cuda_home has no cuBLAS (cublas_v2.h / libcublas.so), which ggml-cuda needs"
  fi
  export PATH="$cuda_home/bin:$PATH" LD_LIBRARY_PATH="$cuda_home/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  cuda_flags=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch" "-DCMAKE_CUDA_COMPILER=$nvcc"
              "-DCMAKE_INSTALL_RPATH=\$ORIGIN;$cuda_home/lib64")
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; "$nvcc" --version | tail -n 2; } \
    | tee -a "$log" >&2
elif [ "$backend" = cpu ]; then
  cuda_flags=(-DGGML_CUDA=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "-DCMAKE_INSTALL_RPATH=\$ORIGIN")
else
  die "SWARMQ_GPU_BACKEND must be cuda or cpu, not '$backend'"
fi
say "python $("$python" -c 'import sys, platform; print(sys.version.split()[0], platform.libc_ver()[1] or "")'), $(nproc) cores, backend $backend$([ "$backend" = cuda ] && echo " (sm_$arch)")"

# --- 1. Python packages
site="$work/site"
stamp="$(sha256sum "$pack/site.tar.xz" | cut -c1-16)"
if [ "$(cat "$site/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$site" && mkdir -p "$site"
  tar -C "$site" -xJf "$pack/site.tar.xz"
  echo "$stamp" > "$site/.stamp"
fi
export PYTHONPATH="$site:$root" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1
say "site unpacked ($(du -sm "$site" | cut -f1) MiB)"

# --- 2. llama.cpp
src="$work/llama-src"
stamp="$(sha256sum "$pack/llama-src.tar.xz" | cut -c1-16)"
if [ "$(cat "$src/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$src" && tar -C "$work" -xJf "$pack/llama-src.tar.xz"
  echo "$stamp" > "$src/.stamp"
fi
bdir="$work/build-cpu"
[ "$backend" = cuda ] && bdir="$work/build-cuda-$arch"
say "configuring llama.cpp ($bdir)"
cmake -S "$src/vendor/llama.cpp" -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF \
  -DGGML_OPENMP=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON "${cuda_flags[@]}" > "$out/cmake-configure.log" 2>&1 \
  || { tail -n 30 "$out/cmake-configure.log" >&2; die "cmake configure failed (see $out/cmake-configure.log)"; }
build_start=$SECONDS
ninja -C "$bdir" -j "$(nproc)" llama > "$out/build.log" 2>&1 \
  || { tail -n 40 "$out/build.log" >&2; die "llama.cpp build failed (see $out/build.log)"; }
say "llama.cpp built in $((SECONDS - build_start)) s"
pkg="$site/llama_cpp"
rm -rf "$pkg" && cp -a "$src/llama_cpp" "$pkg" && mkdir -p "$pkg/lib"
find "$bdir" -name 'lib*.so*' \( -type f -o -type l \) -exec cp -a {} "$pkg/lib/" \;
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$pkg/__init__.py")"
rm -rf "$site"/llama_cpp_python-*.dist-info && mkdir -p "$site/llama_cpp_python-$version.dist-info"
printf 'Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: %s\n' "$version" \
  > "$site/llama_cpp_python-$version.dist-info/METADATA"
: > "$site/llama_cpp_python-$version.dist-info/RECORD"
"$python" -c 'import llama_cpp, sys; print("llama_cpp", llama_cpp.__version__, "gpu offload:", llama_cpp.llama_supports_gpu_offload())' \
  | tee -a "$log" >&2
if [ "$backend" = cuda ]; then
  "$python" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)' \
    || die "the CUDA build reports no GPU offload"
fi

# --- 3. the model
model="${SWARMQ_GPU_MODEL:-$work/random-$shape.gguf}"
if [ ! -f "$model" ]; then
  xz -dc "$pack/tokenizer.gguf.xz" > "$work/tokenizer.gguf"
  "$python" -m bench.make_gguf model "$work/tokenizer.gguf" "$model.part" --shape "$shape" 2>&1 | tee -a "$log" >&2
  mv "$model.part" "$model"
fi
say "model $model ($(du -m "$model" | cut -f1) MiB)"

# --- 4. the benchmarks: embedded PostgreSQL and redis-server of the bench's own, under build/gpu/home.
export SWARMQ_BENCH_EMBEDDED=1 SWARMQ_HOME="$work/home"
gpu_args=()
[ "$backend" = cuda ] && gpu_args=(--gpu 0)
bench() {  # NAME ARGS...: one `python -m bench` run, bounded by what is left of the deadline
  local name="$1" left
  shift
  left=$((deadline - (SECONDS - t0)))
  if [ "$left" -lt 30 ]; then
    say "skipped $name: ${left} s left of ${deadline} s"
    return 0
  fi
  say "bench $name (at most $left s): $*"
  if timeout --kill-after=5 "$left" "$python" -m bench "$@" --out "$out" > "$out/$name.md" 2> "$out/$name.log"; then
    say "bench $name done"
  else
    say "bench $name ended with $? (timeout 124 = out of time; see $out/$name.log)"
  fi
  cat "$out/$name.md" >&2
}
common=(--model "$model" --n "$n" --max-tokens "$max_tokens" --repeats "$repeats" "${gpu_args[@]}")
bench slots --only slots --slots "$slots" "${common[@]}" "$@"
# The prefix cache (figure "prefix", stream part): K = 1 and 16, 5-shot prompts, cache on vs off, and the K = 1
# cached texts against fresh one-pass runs (whether the 16-token alignment holds on CUDA too).
bench prefix --only prefix --slots 1,16 "${common[@]}" "$@"
bench e2e --only e2e "${common[@]}" "$@"
# Stop the embedded servers (PostgreSQL under home/, the bench's own redis-server under home/bench/).
"$python" -m swarmq services stop >/dev/null 2>&1 || true
SWARMQ_HOME="$work/home/bench" "$python" -m swarmq services stop >/dev/null 2>&1 || true
say "done: results in $out"
