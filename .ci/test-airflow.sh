#!/usr/bin/env bash
# One Airflow version of the matrix (`make test-airflow AIRFLOW=3.1.8`; `make test-versions` runs them all):
#   install  a fresh venv with Airflow under its era constraints (.ci/constraints/) and our package from
#            the built wheel in dist/ (not editable: this proves the wheel); Airflow must stay unchanged
#   unit     the unit tests, run from a copy of the repo without veo_provider/ (so the wheel is imported)
#   dags     `airflow dags test` of every example DAG against the offline emulator (tests/integration)
#   e2e      one real cluster run (PostgreSQL, api-server, scheduler, dag-processor, triggerer): callback
#            mode, a worker killed during the paid POST, a forged callback; one paid job
# Venvs live under $VEO_VERSIONS_DIR (default .versions/, git-ignored); uv's cache is shared by every
# venv and every run ($UV_CACHE_DIR, default .versions/uv-cache), so CI downloads each file once.
# STEPS="install unit" runs some steps only. VEO_OVERRIDE_AIRFLOW=1 installs even when our metadata
# refuses that Airflow (uv --override), to see what fails past the install.
set -euo pipefail
VERSION="${1:?usage: .ci/test-airflow.sh AIRFLOW_VERSION (one of .ci/constraints/airflow-*.txt)}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONSTRAINTS="$ROOT/.ci/constraints/airflow-$VERSION.txt"
[ -f "$CONSTRAINTS" ] || { echo "no era constraints for Airflow $VERSION: python tools/era_constraints.py $VERSION" >&2; exit 2; }
DIR="${VEO_VERSIONS_DIR:-$ROOT/.versions}"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$DIR/uv-cache}"
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python; never fetch one
UV="${UV:-$(command -v uv || echo "$ROOT/.venv/bin/uv")}"
PY="${VEO_VERSIONS_PYTHON:-3.11}"   # the Python the constraints were resolved for
STEPS="${STEPS:-install unit dags e2e}"
VENV="$DIR/airflow-$VERSION"
WORK="$DIR/airflow-$VERSION.src"
BIN="$VENV/bin"
WHEEL="$(ls -t "$ROOT"/dist/airflow_provider_veo-*.whl 2>/dev/null | head -1 || true)"
[ -n "$WHEEL" ] || { echo "no wheel in dist/: run make dist first" >&2; exit 2; }

declare -a SUMMARY=()
FAILED=0
step() {  # name command...: run one step, time it, keep going after a failure
  local name="$1" start rc
  shift
  echo "::: Airflow $VERSION: $name"
  start=$(date +%s)
  set +e
  "$@"
  rc=$?
  set -e
  SUMMARY+=("$(printf '%-8s %-4s %4ss' "$name" "$([ $rc = 0 ] && echo ok || echo FAIL)" $(($(date +%s) - start)))")
  [ $rc = 0 ] || FAILED=1
  return 0
}

install() {
  rm -rf "$VENV"
  "$UV" venv --quiet --python "$PY" "$VENV"
  local override=()
  if [ -n "${VEO_OVERRIDE_AIRFLOW:-}" ]; then
    echo "apache-airflow==$VERSION" >"$DIR/override-$VERSION.txt"
    override=(--override "$DIR/override-$VERSION.txt")
  fi
  "$UV" pip install --quiet --python "$BIN/python" --constraint "$CONSTRAINTS" "${override[@]}" \
    "apache-airflow==$VERSION" "$WHEEL[test]" || return 1
  # The provider installs next to that Airflow without changing it, from the wheel, consistently.
  if [ -n "${VEO_OVERRIDE_AIRFLOW:-}" ]; then
    "$UV" pip check --python "$BIN/python" || echo "(VEO_OVERRIDE_AIRFLOW: the incompatibility above is expected)"
  else
    "$UV" pip check --python "$BIN/python" || return 1
  fi
  (cd /tmp && "$BIN/python" - "$VERSION" "$VENV" <<'EOF'
import sys
from importlib.metadata import version

import airflow
import veo_provider
from airflow.providers.common.compat.connection import get_async_connection  # noqa: F401  what triggers use

want, venv = sys.argv[1], sys.argv[2]
assert airflow.__version__ == want, f"Airflow is {airflow.__version__}, not {want}: the install changed it"
assert veo_provider.__file__.startswith(venv), f"veo_provider comes from {veo_provider.__file__}, not the wheel"
print(f"Airflow {airflow.__version__}, airflow-provider-veo {version('airflow-provider-veo')} (wheel), "
      f"common-compat {version('apache-airflow-providers-common-compat')}")
EOF
  ) || return 1
  # Every module of the package imports on this Airflow (what a DAG file, the api-server or the
  # triggerer would import), before any test runs.
  (cd /tmp && AIRFLOW_HOME="$DIR/home-$VERSION" AIRFLOW__CORE__UNIT_TEST_MODE=True "$BIN/python" -c '
import importlib, pkgutil, sys, veo_provider
bad = []
for m in pkgutil.walk_packages(veo_provider.__path__, "veo_provider."):
    try:
        importlib.import_module(m.name)
    except Exception as exc:
        bad.append(f"{m.name}: {type(exc).__name__}: {exc}")
print("\n".join(bad) or "every veo_provider module imports")
sys.exit(1 if bad else 0)')
}

work_copy() {  # the repo without the package, so that `import veo_provider` finds the wheel
  rm -rf "$WORK"
  mkdir -p "$WORK"
  (cd "$ROOT" && tar --exclude=./veo_provider --exclude=./.venv --exclude=./.versions --exclude=./.git \
    --exclude=./dist --exclude=./site --exclude=./out --exclude=./.airflow-home --exclude=__pycache__ \
    --exclude=./.mypy_cache --exclude=./.ruff_cache --exclude=./.import_linter_cache --exclude=./.hypothesis --exclude="*.egg-info" -cf - .) | tar -xf - -C "$WORK"
}

run_pytest() {
  (cd "$WORK" && env -u PYTHONPATH "$BIN/python" -m pytest -p no:cacheprovider -q "$@")
}

unit() {
  # The source-tree checks (module list, docs build, benchmarks) are about the checkout, not about
  # Airflow versions: `make test` runs them.
  run_pytest -m "not integration and not e2e" --ignore=tests/test_architecture.py \
    --ignore=tests/test_docs.py --ignore=tests/test_benchmarks.py --ignore=tests/reliability tests
}

dags() {
  # Every example DAG (tests/versions checks that none is left out) and the user scenarios the
  # docs promise on every version: mapped generate -> 1080p, a retry after execution_timeout that
  # pays once, a 75 s API outage, @task.veo mapped, daily_job_limit=2 paying two. Two pytest
  # processes at once, each with its own Airflow home and emulator: `airflow dags test` mostly
  # waits, so this halves the step's wall time even on 2 cores.
  local a b
  run_pytest -m integration tests/integration/test_examples.py tests/integration/test_spending_cap.py \
    >"$DIR/dags-a-$VERSION.log" 2>&1 &
  a=$!
  run_pytest -m integration tests/integration/test_dags_test.py tests/integration/test_taskflow.py \
    >"$DIR/dags-b-$VERSION.log" 2>&1 &
  b=$!
  wait $a && a=0 || a=$?
  wait $b && b=0 || b=$?
  cat "$DIR/dags-a-$VERSION.log" "$DIR/dags-b-$VERSION.log"
  [ $a = 0 ] && [ $b = 0 ]
}

e2e() {
  run_pytest -m e2e "tests/e2e/test_callback_crash.py" -k LocalExecutor
}

mkdir -p "$DIR"
work_copy  # fresh each run: the tests as they are now
INSTALL_FAILED=0
for s in $STEPS; do
  case "$s" in
    install) step install install; INSTALL_FAILED=$FAILED ;;
    unit | dags | e2e)
      [ -x "$BIN/python" ] && [ "$INSTALL_FAILED" = 0 ] || { SUMMARY+=("$(printf '%-8s %-4s' "$s" skip) (the install step failed or never ran)"); FAILED=1; continue; }
      step "$s" "$s" ;;
    *) echo "unknown step $s (install unit dags e2e)" >&2; exit 2 ;;
  esac
done
echo "::: Airflow $VERSION summary"
printf '  %s\n' "${SUMMARY[@]}"
exit $FAILED
