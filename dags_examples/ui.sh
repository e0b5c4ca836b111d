#!/usr/bin/env bash
# `make ui`: Airflow's api-server on the demo's throw-away SQLite home (no login: every user is an
# admin of the simple auth manager), then the offline demo (`demo.sh`: the Veo API emulator, one
# run of `veo_text_to_video`), then the URL of that run's Videos tab. Runs until Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${VENV:-$ROOT/.venv}/bin"
PORT="${VEO_UI_PORT:-8080}"
export AIRFLOW_HOME="$ROOT/.airflow-home"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags_examples"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export VEO_OUTPUT_DIR="${VEO_OUTPUT_DIR:-$ROOT/out/videos}"  # written by the demo, streamed by the api-server
mkdir -p "$AIRFLOW_HOME" "$VEO_OUTPUT_DIR"

API_PID=""
stop() { [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null; true; }
trap stop EXIT
trap 'echo; echo "Stopping the api-server."; exit 0' INT TERM

"$BIN/airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1
"$BIN/airflow" api-server --host 127.0.0.1 --port "$PORT" --workers 1 >"$AIRFLOW_HOME/api-server.log" 2>&1 &
API_PID=$!
for _ in $(seq 180); do
  curl -fsS "http://127.0.0.1:$PORT/api/v2/monitor/health" >/dev/null 2>&1 && break
  kill -0 "$API_PID" 2>/dev/null || { echo "The api-server stopped; see $AIRFLOW_HOME/api-server.log" >&2; exit 1; }
  sleep 1
done
echo "Airflow's api-server: http://127.0.0.1:$PORT (log: $AIRFLOW_HOME/api-server.log)"

bash "$ROOT/dags_examples/demo.sh"
RUN_ID="$(grep -o 'run_id=[^,]*' "$AIRFLOW_HOME/dags-test.log" | tail -1 | cut -d= -f2)"
RUN_PATH="$("$BIN/python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$RUN_ID")"
echo
echo "The run's Videos tab:  http://127.0.0.1:$PORT/dags/veo_text_to_video/runs/$RUN_PATH/plugin/veo-videos"
echo "Every DAG's videos:    http://127.0.0.1:$PORT/plugin/veo-gallery"
echo "Press Ctrl-C to stop."
wait "$API_PID"
