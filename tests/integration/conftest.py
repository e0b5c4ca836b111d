"""Real `airflow dags test` runs (SQLite metadata DB) against the bundled Veo emulator."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from veo_provider.testing.emulator import EmulatorConfig, VeoEmulator

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.integration
LAST_RUN = "SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1"


@dataclass
class DagRunResult:
    returncode: int
    output: str
    db: Path

    @property
    def succeeded(self) -> bool:
        return "state=success" in self.output and "DagRun Finished" in self.output

    def query(self, sql: str, *args: Any) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def xcoms(self, dag_id: str, task_id: str, key: str = "return_value") -> list[Any]:
        rows = self.query(
            f"SELECT value FROM xcom WHERE dag_id=? AND task_id=? AND key=? AND run_id = ({LAST_RUN}) ORDER BY map_index",
            dag_id,
            task_id,
            key,
            dag_id,
        )
        return [json.loads(v) if isinstance(v, str | bytes) else v for (v,) in rows]

    def tries(self, dag_id: str, task_id: str) -> list[tuple[int, str, int]]:
        return self.query(
            "SELECT map_index, state, try_number FROM task_instance WHERE dag_id=? AND task_id=? "
            f"AND run_id = ({LAST_RUN}) ORDER BY map_index",
            dag_id,
            task_id,
            dag_id,
        )


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """A migrated SQLite Airflow home whose DAGs folder holds the examples and the test DAGs."""
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    for src in [*(ROOT / "dags_examples").glob("*.py"), *(Path(__file__).parent / "dags").glob("*.py")]:
        shutil.copy(src, dags)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "VEO_OUTPUT_DIR": str(home / "videos"),
        "VEO_POLL_INTERVAL": "0.5",
    }
    migrate = subprocess.run([BIN / "airflow", "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    return env


@pytest.fixture(scope="session")
def _emulator():
    emu = VeoEmulator(EmulatorConfig(generation_seconds=1.0)).start()
    yield emu
    emu.stop()


@pytest.fixture
def emulator(_emulator):
    _emulator.reset()
    return _emulator


@pytest.fixture
def dags_test(airflow_env, emulator):
    """Run `airflow dags test DAG_ID` as a user would; the connection points at the emulator."""

    def run(dag_id: str, conf: dict | None = None, timeout: float = 180, **conn_extra: Any) -> DagRunResult:
        conn = {"conn_type": "veo", "host": emulator.url, "password": "test-token", "extra": conn_extra}
        env = {**airflow_env, "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn)}
        cmd = [str(BIN / "airflow"), "dags", "test", dag_id] + (["--conf", json.dumps(conf)] if conf else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        return DagRunResult(
            proc.returncode, proc.stdout + proc.stderr, Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db"
        )

    return run
