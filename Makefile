# tradelane: two commands on a fresh machine — `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= $(or $(TRADELANE_TEST_PG_URL),postgresql://postgres@127.0.0.1:5432/test)
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: venv demo test test-sqlite test-postgres lint typecheck bench serve worker clean browser lock contracts chaos

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## The main job: hub + marketplace sandboxes + sample catalog on embedded SQLite.
demo: $(STAMP)
	$(BIN)/tradelane demo

## Lint, type-check, then the whole suite on SQLite and again on PostgreSQL.
test: $(STAMP) browser lint typecheck test-sqlite test-postgres

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

test-sqlite: $(STAMP)
	TRADELANE_TEST_DB=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(STAMP)
	TRADELANE_TEST_DB=postgres TRADELANE_TEST_PG_URL=$(PG_URL) $(BIN)/pytest $(PYTEST_ARGS)

## Headless Chromium for browser tests, from Debian (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install chromium'" >&2; exit 1; fi; }

## The chaos suite's long form (tests/chaos; its short form is part of `make test`): 1,000 orders /
## 10,000 offers under SIGKILLs and dropped connections, a flaky marketplace, deeper fuzzing. By hand.
chaos: $(STAMP)
	TRADELANE_CHAOS=long TRADELANE_TEST_DB=sqlite $(BIN)/pytest -s --timeout 3600 tests/chaos $(PYTEST_ARGS)
	TRADELANE_CHAOS=long TRADELANE_TEST_DB=postgres TRADELANE_TEST_PG_URL=$(PG_URL) $(BIN)/pytest -s --timeout 3600 tests/chaos $(PYTEST_ARGS)

## Every issue-12 ratio, one JSON object ending with a summary of the goals; the PostgreSQL benchmarks
## create and drop their own databases on the server of PG_URL. BENCH_ARGS: e.g. --only webhooks.
bench: $(STAMP)
	$(BIN)/python bench/run.py --pg-url $(PG_URL) $(BENCH_ARGS)

serve: $(STAMP)
	$(BIN)/tradelane db upgrade && $(BIN)/tradelane serve

worker: $(STAMP)
	$(BIN)/tradelane worker

## Regenerate the contract subsets under contracts/ from the upstream specs folder
## (TRADELANE_SPECS_DIR, or the script's default; see `python3 scripts/contracts.py --help`).
contracts:
	$(PYTHON) scripts/contracts.py

## Regenerate requirements.lock from pyproject.toml (needs network to PyPI).
lock:
	$(BIN)/python -m pip install --quiet uv && $(BIN)/uv pip compile --python-version 3.11 pyproject.toml --extra dev -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
