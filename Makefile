# `make run` and `make test` each create .venv and install into it: nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
SIM_PORT := 8001
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest schema bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/balance-gateway serve --config deploy/demo.toml --host 127.0.0.1 --port $(PORT) --simulator-port $(SIM_PORT)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench

typecheck: $(STAMP)
	$(BIN)/mypy gateway

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

schema: $(STAMP)
	$(BIN)/balance-gateway export-schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
