# Every target creates or refreshes the local virtual environment (.venv) first,
# so `make run` and `make test` work on a fresh clone with nothing typed before.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qlab-installed

.PHONY: setup run test lab bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/qlab run

test: setup
	$(BIN)/python -m pytest

lab: setup
	$(BIN)/jupyter lab notebooks/

# full-size comparison + notebook and widget times -> BENCHMARKS.md, then check the goals
bench: setup
	$(BIN)/qlab bench
	$(BIN)/python benchmarks/check.py

clean:
	rm -rf artifacts .pytest_cache .hypothesis
