# The two commands: `make run` (the portal with demo data, embedded default) and `make test` (everything).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test lint bench clean-var

# pytest-xdist processes of `make test` (each with its own test database, Redis database and var folder).
TEST_WORKERS ?= 2

# uv installs the pinned requirements in parallel: seconds where pip took minutes on a fresh machine.
UV_VERSION := 0.13.9
INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.run-installed: requirements.txt | $(BIN)/python
	$(INSTALL) -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(INSTALL) -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	@export DJANGO_DEBUG=$${DJANGO_DEBUG:-true}
	python manage.py migrate --noinput
	python manage.py init_mlflow_store
	python manage.py seed_demo
	# The embedded Redis runs only when no REDIS_URL names another one.
	processes="web worker heartbeat beat inference logwriter traffic"; [ -n "$${REDIS_URL:-}" ] || processes="redis $$processes"
	echo "Hafnium Portal on http://127.0.0.1:8000 (Ctrl-C stops everything)"
	echo "Scoring API on http://127.0.0.1:$${HAFNIUM_INFERENCE_PORT:-8001} (token in var/scoring-token.txt)"
	exec honcho --procfile Procfile start $$processes

test: $(VENV)/.dev-installed
	@echo "ruff check, ruff format --check, pytest"
	ruff check .
	ruff format --check .
	python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	ruff check --fix .
	ruff format .

bench: $(VENV)/.dev-installed
	python bench/run_all.py $(BENCH_ARGS)
