#!/usr/bin/env bash
# Runs the example DAG `veo_text_to_video` with `airflow dags test` on a throw-away SQLite Airflow
# home. Offline by default (the bundled Veo API emulator); with VEO_API_TOKEN set, the real API.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${VENV:-$ROOT/.venv}/bin"
export AIRFLOW_HOME="$ROOT/.airflow-home"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags_examples"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
export VEO_OUTPUT_DIR="${VEO_OUTPUT_DIR:-$ROOT/out/videos}"
mkdir -p "$AIRFLOW_HOME" "$VEO_OUTPUT_DIR"

conn_json() {  # host token -> connection JSON (built by Python so any token is escaped)
  "$BIN/python" -c 'import json,sys; print(json.dumps({"conn_type": "veo", "host": sys.argv[1], "password": sys.argv[2]}))' "$1" "$2"
}

EMULATOR_PID=""
cleanup() { [ -n "$EMULATOR_PID" ] && kill "$EMULATOR_PID" 2>/dev/null || true; }
trap cleanup EXIT

if [ -n "${VEO_API_TOKEN:-}" ]; then
  echo "VEO_API_TOKEN is set: generating with the real Veo API at ${VEO_BASE_URL:-https://api.acedata.cloud} (this costs credits)."
  export AIRFLOW_CONN_VEO_DEFAULT="$(conn_json "${VEO_BASE_URL:-https://api.acedata.cloud}" "$VEO_API_TOKEN")"
else
  PORT="$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$BIN/python" -m veo_provider.testing.emulator --port "$PORT" --generation-seconds 3 >"$AIRFLOW_HOME/emulator.log" 2>&1 &
  EMULATOR_PID=$!
  for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/_emulator/stats" >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "Offline demo: Veo API emulator on http://127.0.0.1:$PORT (no credits used)."
  export AIRFLOW_CONN_VEO_DEFAULT="$(conn_json "http://127.0.0.1:$PORT" test-token)"
  export VEO_POLL_INTERVAL="${VEO_POLL_INTERVAL:-1}"
fi

"$BIN/airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1
"$BIN/airflow" dags reserialize >/dev/null 2>&1 || true
"$BIN/airflow" dags test veo_text_to_video 2>&1 | tee "$AIRFLOW_HOME/dags-test.log" | grep -E "Veo |Submitted|Downloading|DagRun Finished|ERROR" || true

if ! grep -q "state=success" "$AIRFLOW_HOME/dags-test.log"; then
  echo "The demo DAG run did not succeed; see $AIRFLOW_HOME/dags-test.log" >&2
  exit 1
fi
echo
echo "Videos written:"
find "$VEO_OUTPUT_DIR" -name '*.mp4' -newer "$AIRFLOW_HOME/db-migrate.log" -printf '  %p (%s bytes)\n' | sort
