# cx-journeys: `make demo` and `make test` are the two commands; `make help` lists the rest.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CXJ := $(VENV)/bin/cxj
PYTEST := $(PY) -m pytest

.DEFAULT_GOAL := help
# rustup puts cargo in ~/.cargo/bin, which a fresh shell may not have on its PATH.
CARGO := $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
# cargo test links the core against this interpreter (the extension module itself needs no libpython).
CORE_ENV := PYO3_PYTHON=$(abspath $(PY))

.PHONY: help setup demo test test-unit test-integration bench reliability lint schema stack-up stack-down clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install apt packages (ClickHouse, Prometheus, Alertmanager) and the .venv; idempotent
	@deploy/local/setup.sh

demo: setup ## Run the pipeline on the local stack with simulated traffic and print the report
	$(CXJ) demo

test: setup ## Lint, the core's own tests, unit tests, then integration tests on a real local stack (free ports)
	$(PY) -m ruff check .
	cd core && $(CORE_ENV) $(CARGO) test -q
	$(PYTEST) tests/unit -q
	$(PYTEST) tests/integration -q

test-unit: setup ## Unit tests only (no network)
	$(PYTEST) tests/unit -q

test-integration: setup ## Integration tests only (starts the real stack)
	$(PYTEST) tests/integration -q

bench: setup ## Throughput, latency, memory (private stack), the HTTP service, state at 1M customers, the resolved view's cost; bench-results/*.json
	$(CXJ) bench pipeline
	$(CXJ) bench api
	$(CXJ) bench state
	$(CXJ) stack up
	$(CXJ) init
	$(CXJ) bench view

reliability: setup ## Faults (kill -9 x3, ClickHouse down 30 s, broker restart) and hostile input; also in `make test`
	$(PYTEST) tests/unit/streams/test_hostile_input.py tests/integration/test_faults.py -q -s

lint: setup ## ruff, rustfmt and clippy (warnings are errors), mypy --strict
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	cd core && $(CARGO) fmt --check
	cd core && $(CORE_ENV) $(CARGO) clippy -q --all-targets -- -D warnings
	$(PY) -m mypy

schema: setup ## Re-export the JSON Schema files under schemas/jsonschema
	$(CXJ) schema export

stack-up: setup ## Start the local stack (cxj stack up)
	$(CXJ) stack up

stack-down: ## Stop the local stack
	@[ -x $(CXJ) ] && $(CXJ) stack down || true

clean: stack-down ## Stop the stack and remove .cxj and .venv
	rm -rf .cxj $(VENV)
