# Quick start:  make run   (the service on the embedded SQLite default)
#               make test  (the whole test suite)
# Both create .venv and install what they need when it is missing.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

# The first interpreter that is Python 3.11 or newer.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: run test lint typecheck demo bench clean install

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed (python3.11 / python3 on PATH)"; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/cors-scanner serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check scanner tests benchmarks
	$(VENV)/bin/ruff format --check scanner tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy scanner/core

demo: $(STAMP)
	$(VENV)/bin/cors-scanner demo --host $(HOST) --port 8088

bench: $(STAMP)
	$(PY) benchmarks/scan_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
