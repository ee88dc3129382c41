# swarmq on NVIDIA GPUs: `docker compose up -d` (see docker-compose.yml), or
#   docker build -t swarmq:local . && docker run --gpus device=0 -v "$PWD/models:/app/models:ro" swarmq:local worker --gpu 0
#
# Two stages: the CUDA *devel* image compiles llama-cpp-python (nvcc, headers); the smaller *runtime* image
# only needs the CUDA libraries (cudart, cuBLAS). The host driver provides libcuda.so.1 at run time.

ARG CUDA_VERSION=12.4.1

# ---------------------------------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu22.04 AS build

ARG LLAMA_CPP_VERSION=0.3.36
# Real code for Volta..Hopper (V100, T4, A100, A10/3090, L4/4090, H100); other GPUs JIT from the newest PTX.
ARG CUDA_ARCHITECTURES="70;75;80;86;89;90"
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

# Ubuntu 22.04's own python3.11 (universe): the same interpreter path in both stages, so the venv copies over.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
      build-essential cmake ninja-build git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip setuptools wheel

# llama-cpp-python is source-only on PyPI. Build the CUDA wheel explicitly, with pip's cache off, so a CPU
# build can never be reused by accident (pip's cache does not key on CMAKE_ARGS; see scripts/llama-wheel.sh).
# GGML_NATIVE=OFF: the build machine's CPU is not the one that runs the image.
# No driver while building: link against the toolkit's libcuda stub (this stage is thrown away).
RUN ln -sf /usr/local/cuda/lib64/stubs/libcuda.so /usr/local/cuda/lib64/stubs/libcuda.so.1 \
 && LD_LIBRARY_PATH=/usr/local/cuda/lib64/stubs:${LD_LIBRARY_PATH} \
    CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}" FORCE_CMAKE=1 \
    pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python -w /wheels "llama-cpp-python==${LLAMA_CPP_VERSION}"

# Dependencies in their own layer, keyed on pyproject.toml only: a code change does not reinstall them.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['gpu']))" > /tmp/requirements.txt \
 && pip install /wheels/llama_cpp_python-*.whl -r /tmp/requirements.txt

# Editable install of the repository at /app, so the image runs the checkout's configs (config/) and code as is;
# the Alembic migrations ship inside the package (swarmq/store/migrations), checked here.
COPY . /app
RUN pip install --no-deps -e "/app[gpu]" \
 && python -c "import swarmq.store.db as d; assert (d.MIGRATIONS_DIR / 'env.py').is_file(), d.MIGRATIONS_DIR"

# ---------------------------------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive
# libgomp1: llama.cpp's CPU code uses OpenMP.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 libgomp1 ca-certificates git \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 SWARMQ_MODELS_DIR=/app/models
WORKDIR /app
# No USER: the scoring sandbox starts as root to enter its namespaces and then drops every run to a throwaway
# uid (with CAP_SYS_ADMIN from docker-compose.yml). As a fixed non-root user it could do neither.

ENTRYPOINT ["swarmq"]
CMD ["--help"]
