# swarmq — `make demo` runs the demo end to end; `make test` runs the checks and the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# CPU build flags for llama-cpp-python live in scripts/llama-wheel.sh (SWARMQ_LLAMA_BACKEND=cuda for GPUs).

.PHONY: install demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml scripts/llama-wheel.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$$(PYTHON=$(BIN)/python bash scripts/llama-wheel.sh)"
	$(BIN)/python -m pip install -q -e ".[demo,gpu,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/swarmq demo

lint: install
	$(BIN)/ruff check swarmq tests bench
	$(BIN)/ruff format --check swarmq tests bench

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q -m "not services and not model and not faults and not sandbox and not slow"

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
