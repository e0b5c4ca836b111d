# Fresh machine with Python 3.10+: `make demo` runs the example DAG offline; `make test` runs all checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-reliability lint typecheck unit bench docs dist test-airflow test-versions clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

demo: $(STAMP)
	VENV=$(VENV) bash dags_examples/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check veo_provider tests dags_examples benchmarks tools
	$(BIN)/ruff format --check veo_provider tests dags_examples benchmarks tools
	$(BIN)/python tools/check_shape.py veo_provider
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy veo_provider

unit: $(STAMP)
	$(BIN)/pytest -m "not integration and not e2e"

test: lint typecheck $(STAMP)
	$(BIN)/pytest

# The seeded fault campaign (docs/reliability.md): 200 DAG runs on a real Airflow (PostgreSQL,
# two triggerers, LocalExecutor + a CeleryExecutor slice on Redis) under drawn faults; fails on any
# duplicate, lost result, hung task, unexpected failure or secret hit. SEED=N RUNS=1 reruns one seed.
# First the secrets sweep of every example DAG (pytest -m reliability; the campaign scans its own).
SEED ?= 1000
RUNS ?= 200
test-reliability: $(STAMP)
	$(BIN)/pytest -m reliability tests/reliability
	$(BIN)/python -m tests.reliability.campaign --seed $(SEED) --runs $(RUNS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The documentation site, into site/ (strict: broken links, anchors or references and any
# warning fail the build). NO_MKDOCS_2_WARNING silences Material's end-of-life banner.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The sdist and the wheel, into dist/ (uv builds the wheel from the sdist, so the sdist is proven
# too); twine checks what PyPI would check (metadata, README rendering).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/uv build --quiet --out-dir dist
	$(BIN)/twine check --strict dist/*

# The Airflow version matrix (.ci/test-airflow.sh): per version a venv under .versions/ with that
# Airflow under its era constraints (.ci/constraints/, made by tools/era_constraints.py) and our
# wheel from `make dist`, then the unit tests, every example DAG under `airflow dags test` and one
# real-cluster run. `make test-airflow AIRFLOW=3.1.8` runs one version; STEPS="install unit" some steps.
AIRFLOW_VERSIONS ?= 3.0.6 3.1.8 3.2.2 3.3.2
AIRFLOW ?= 3.3.2
test-airflow: dist
	UV=$(BIN)/uv bash .ci/test-airflow.sh $(AIRFLOW)

# Every version, even after one fails; fails at the end if any did.
test-versions: dist
	@failed=""; for v in $(AIRFLOW_VERSIONS); do \
	  UV=$(BIN)/uv bash .ci/test-airflow.sh $$v || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "Airflow versions that failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) .airflow-home out site dist .versions .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
