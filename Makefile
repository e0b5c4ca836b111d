# Fresh machine with Python 3.10+: `make demo` runs the example DAG offline; `make test` runs all checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-reliability lint typecheck unit bench docs dist test-airflow test-versions clean ui-bundle
.PHONY: ui test-ui

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	VENV=$(VENV) bash dags_examples/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check veo_provider tests dags_examples benchmarks tools
	$(BIN)/ruff format --check veo_provider tests dags_examples benchmarks tools
	$(BIN)/python tools/check_shape.py veo_provider
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy veo_provider

# pytest-xdist workers for the unit and integration tiers (one per core; 0 runs in one process).
PYTEST_WORKERS ?= 2

# The unit tier: no Airflow processes, no PostgreSQL or Redis; under 2 minutes on 2 cores.
unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not integration and not e2e"

# Everything but the reliability tier, each tier timed by its own pytest run: unit, integration
# (`airflow dags test`, the docs site, the standalone benchmarks' smoke size; a file per worker, so
# module fixtures start once) and e2e (one cluster at a time, one per executor: tests/e2e/conftest.py).
test: lint typecheck unit
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "integration and not reliability"
	$(BIN)/pytest -m "e2e and not reliability"

# The seeded fault campaign (docs/reliability.md): 200 DAG runs on a real Airflow (PostgreSQL,
# two triggerers, LocalExecutor + a CeleryExecutor slice on Redis) under drawn faults; fails on any
# duplicate, lost result, hung task, unexpected failure or secret hit. SEED=N RUNS=1 reruns one seed.
# First the tests marked reliability: the secrets sweep of every example DAG (the campaign scans its
# own), the benchmarks' smoke size on a real Airflow, and the campaign's seeded slice.
SEED ?= 1000
RUNS ?= 200
test-reliability: $(STAMP)
	$(BIN)/pytest -m reliability
	$(BIN)/python -m tests.reliability.campaign --seed $(SEED) --runs $(RUNS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The documentation site, into site/ (strict: broken links, anchors or references and any
# warning fail the build). NO_MKDOCS_2_WARNING silences Material's end-of-life banner.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The Videos tab's bundle (veo_provider/ui/www -> veo_provider/ui/static): install from the lockfile,
# run its tests, rebuild, and fail if the committed bundle differs from the rebuilt one.
UI_WWW := veo_provider/ui/www
ui-bundle:
	cd $(UI_WWW) && npm ci --no-audit --no-fund && npm test && npm run build
	git diff --exit-code -- veo_provider/ui/static

# Airflow's api-server on the demo's SQLite home with the emulator, the demo run, and the URL of its
# Videos tab (no login needed); until Ctrl-C. VEO_UI_PORT=8080 by default.
ui: $(STAMP)
	VENV=$(VENV) bash dags_examples/ui.sh

# The Videos views' tests, the browser check included, never skipped (CI=true): needs Debian's
# chromium (apt-get install -y chromium) and Node. Screenshots land in out/ui-videos/.
test-ui: ui-bundle $(STAMP)
	CI=true $(BIN)/pytest tests/ui

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
