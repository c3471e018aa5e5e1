# Apiary developer entry points; `make` (or `make help`) lists them.
# PostgreSQL needs no setup: without APIARY_DATABASE_URL an embedded server is started
# (store.database.database_url; the tests use .apiary/test-pg).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test bench bench-peers lint migrate

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml changes (the venv itself is order-only).
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(INSTALLED) ## Create .venv and install Apiary with its dev tools

run: $(INSTALLED) ## Serve with 3 demo bots
	$(BIN)/apiary serve --demo-bots 3

test: $(INSTALLED) ## Run the tests (extra pytest arguments: PYTEST_ARGS=...)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(INSTALLED) ## Run the benchmarks, the peers too (BENCH_ARGS=--no-peers skips them)
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

bench-peers: $(INSTALLED) ## Apiary beside PgQueuer, Oban and Celery (installs them in .bench-peers/)
	$(BIN)/python -m tests.bench.peers

lint: $(INSTALLED) ## ruff check, ruff format --check, mypy, lint-imports (the rooms' order)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

migrate: $(INSTALLED) ## Apply database migrations
	$(BIN)/apiary db migrate
