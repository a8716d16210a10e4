# Quick start:  make run   (the service on the embedded SQLite default)
#               make test  (the whole test suite)
# Both create .venv and install what they need when it is missing.
# `make test` skips the PostgreSQL half and the Chromium suites when those are missing;
# `make test-all` runs everything and refuses to start without them.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=
# The PostgreSQL `make test-all` uses (tests create and drop their own databases on it).
TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
CHROMIUM ?= /usr/bin/chromium

# The first interpreter that is Python 3.11 or newer.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: run test test-all lint typecheck demo bench clean install

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

test-all: $(STAMP)
	@pg_isready -q -d "$$(echo '$(TEST_DATABASE_URL)' | sed 's/+asyncpg//')" 2>/dev/null \
		|| { echo "error: no PostgreSQL at $(TEST_DATABASE_URL) (start it, or set TEST_DATABASE_URL=...)"; exit 2; }
	@test -x $(CHROMIUM) \
		|| { echo "error: $(CHROMIUM) is missing (apt-get install chromium): the browser suites need it"; exit 2; }
	CORS_SCANNER_TEST_DATABASE_URL='$(TEST_DATABASE_URL)' $(PY) -m pytest -n auto $(PYTEST_ARGS)

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
