# Switchboard: `make run` to serve, `make test` to check, `make lint` to lint, `make bench` to measure.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests run on pytest-xdist workers, the process-heavy groups one test at a time (docs/testing.md).
# TEST_WORKERS=0 runs them all in this one process.
TEST_WORKERS ?= 3
PARALLEL := -n $(TEST_WORKERS) --dist loadgroup

.PHONY: install migrate run worker test test-fast test-browser bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/flask --app wsgi db upgrade

run: migrate
	$(BIN)/python -m supervisor

worker: install
	$(BIN)/python -m workers

test: install
	$(BIN)/python -m pytest $(PARALLEL) --durations=15

# The quick lane while working: everything but the process-level (slow) and browser tests, on SQLite;
# one xdist worker more, as these small tests wait on sockets more than on the CPU (about 110 s on 2 cores).
FAST_WORKERS ?= 4
test-fast: install
	TEST_DATABASE_URL= $(BIN)/python -m pytest -q -n $(FAST_WORKERS) --dist loadgroup -m "not slow and not browser"

test-browser: install
	$(BIN)/python -m pytest -q -m browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
