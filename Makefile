# Every target creates or refreshes the local virtual environment (.venv) first,
# so `make run` and `make test` work on a fresh clone with nothing typed before.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qlab-installed

.PHONY: setup run test test-fast lab html bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/qlab run

# every tier: unit, integration, notebooks (papermill, smoke mode), browser, on two workers
# (pytest-xdist; tests/conftest.py keeps each test module on one worker, each notebook a unit of its own)
XDIST := -n 2
# more pytest options, e.g. make test PYTEST_ARGS=--durations=30
PYTEST_ARGS ?=

test: setup
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS) tests/unit tests/integration tests/notebooks tests/browser

# the unit tier only (numpy and small TF ops, no training): the edit-test loop
test-fast: setup
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS) tests/unit

lab: setup
	$(BIN)/jupyter lab notebooks/

# the executed notebooks of the last `make run` as static HTML with their figures (artifacts/html/full/)
html: setup
	$(BIN)/qlab html

# full-size comparison + notebook and widget times -> BENCHMARKS.md, then check the goals
bench: setup
	$(BIN)/qlab bench
	$(BIN)/python benchmarks/check.py

clean:
	rm -rf artifacts .pytest_cache .hypothesis
