# `make demo` and `make test` each create the virtual environment they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CI and the developers' machines keep MNIST here; elsewhere set AAE_DATA_DIR or pass --data-dir.
export AAE_DATA_DIR ?= $(abspath ../shared/data)

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	touch $@

.PHONY: install demo test test-fast lint readme bench compare
install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/aae demo --out runs/demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m 'not slow'

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks

# regenerate the README's config-key table from the config's own field docs
readme: $(BIN)/.installed
	$(BIN)/python -c 'from aae.config.docs import write_key_table; write_key_table("README.md")' 

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/step.py

# each bundled MNIST config's epoch here against a git ref: make compare REF=<commit>
compare: $(BIN)/.installed
	$(BIN)/python benchmarks/compare.py $(REF)
