# The two commands: `make run` (the portal with demo data, embedded default) and `make test` (everything).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test lint bench clean-var

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
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
	python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	ruff check --fix .
	ruff format .

bench: $(VENV)/.dev-installed
	python bench/run_all.py $(BENCH_ARGS)
