# Two commands on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install repro lint test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

repro: install           ## run the pipeline (the offline pocket benchmark by default)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

lint: install            ## check formatting and lint rules (ruff; settings in pyproject.toml)
	$(BIN)/ruff format --check
	$(BIN)/ruff check

test: install            ## run the test suite
	$(BIN)/python -m pytest

bench: install           ## run the benchmarks in benchmarks/
	@ls benchmarks/*.py >/dev/null 2>&1 && for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done || echo "no benchmarks yet"

clean:                   ## remove the virtual environment
	rm -rf $(VENV)
