# `make run` and `make test` each create .venv and install into it: nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
SIM_PORT ?= 8001
STAMP := $(VENV)/.installed
NEEDS_PYTHON := import sys; sys.exit(sys.version_info < (3, 11))

.PHONY: run test lint typecheck pytest schema bench clean lock fleet

# A .venv that cannot run the CLI (built by another Python, its interpreter gone, moved
# from another folder) is rebuilt, not trusted because its stamp is newer than pyproject.
ifneq ($(shell $(BIN)/balance-gateway --version >/dev/null 2>&1 && echo ok),ok)
.PHONY: $(STAMP)
endif

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c '$(NEEDS_PYTHON)' 2>/dev/null || { echo "make: '$(PYTHON)' is not Python 3.11 or newer; run: make PYTHON=python3.12 $(MAKECMDGOALS)" >&2; exit 1; }
	@if [ -d $(VENV) ] && ! $(BIN)/balance-gateway --version >/dev/null 2>&1; then echo "$(VENV) does not work here (another Python, or moved): rebuilding it"; rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@$(BIN)/balance-gateway graphiql fetch
	@touch $(STAMP)

# exec: Ctrl-C reaches the server alone, which stops quietly (no "make: *** Interrupt").
# The demo starts afresh (its top-ups, history and alert levels forgotten), so the examples
# of the README and docs/ answer as shown on every run; KEEP=1 keeps them.
run: $(STAMP)
	@$(if $(KEEP),,$(BIN)/balance-gateway demo reset --config deploy/demo.toml >/dev/null &&) exec $(BIN)/balance-gateway serve --config deploy/demo.toml --host 127.0.0.1 --port $(PORT) --simulator-port $(SIM_PORT)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench

typecheck: $(STAMP)
	$(BIN)/mypy gateway tests bench

# Coverage includes the CLI processes the system tests start; the gate is today's level.
# Two processes (pytest-xdist), each taking whole test files, so a module's servers start
# once: the suite takes about half as long as in one (docs/testing.md).
pytest: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile --cov=gateway --cov-report=term --cov-fail-under=95 --durations=15

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The fleet simulation's long profile against the reference model (docs/dashboard.md):
# in-process, 3 replicas x 20 balances over a month and more of injected time on PostgreSQL
# and on SQLite; then 3 real serve processes, restarted and killed (kill -9), on PostgreSQL.
# FLEET_ONLY=sqlite (or postgresql): one journal database instead of both.
fleet: $(STAMP)
	FLEET_PROFILE=long $(BIN)/pytest -p no:cacheprovider --no-cov -s -q \
		-k "reference_model$(if $(FLEET_ONLY), and $(FLEET_ONLY))" \
		tests/fleet/test_fleet_simulation.py tests/system/test_fleet_signals.py

schema: $(STAMP)
	$(BIN)/balance-gateway export-schema

# requirements.lock: the dependency set make installs. Regenerate it after changing
# pyproject.toml's dependencies (or to take upstream releases), then run make test.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# The application's dependency set, locked: make installs exactly these (pip -c)."; \
	  echo "# Update: make lock (a fresh virtualenv, pyproject's ranges, then pip freeze)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^balance-gateway'; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
