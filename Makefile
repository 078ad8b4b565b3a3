# Mosaic Orchestrator: `make install`, `make demo`, `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export MOSAIC_HOME ?= $(CURDIR)/.mosaic

.PHONY: install lint format typecheck test test-fast demo up clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Rewrite the code the way `make lint` wants it (ruff's fixes, then its formatter).
format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

## Everything CI runs: lint, types, then every tier (Docker and Chromium are set up when possible).
test: install lint typecheck
	bash scripts/ensure-docker.sh
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest -n 2 --dist loadfile -m "not serial" --durations=30
	$(BIN)/pytest -m serial --durations=10

## Unit and integration tiers only (no Docker).
test-fast: install
	$(BIN)/pytest -m "not docker"

## The demo chooses the scripted provider itself and runs on the default sandbox
## (MOSAIC_SANDBOX=auto: docker, else bwrap); it prints which ones it got.
demo: install
	$(BIN)/mosaic demo

up: install
	$(BIN)/mosaic up

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .mosaic
