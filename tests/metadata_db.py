"""Scenarios on a real Airflow metadata database, each in a subprocess with its own AIRFLOW_HOME.

Airflow's settings, ORM and plugin registry are process-wide, so a scenario script runs apart
from the test process and writes its findings to a JSON file. The test side:
``throwaway_database`` (SQLite, or a PostgreSQL database made for the test and dropped after)
and ``run_scenario``; the scenario side: ``create_dag_run`` (migrate, sync the DAGs folder,
create one run).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def throwaway_database(kind: str, prefix: str) -> Iterator[str | None]:
    """None for Airflow's default SQLite file in the scenario's home; a PostgreSQL URL otherwise (skips if absent)."""
    if kind == "sqlite":
        yield None
        return
    import pytest

    from veo_provider.testing.cluster import PG_HOST, PG_PORT, PG_USER, admin_sql

    db = f"{prefix}_{secrets.token_hex(4)}"
    try:
        admin_sql(f"CREATE DATABASE {db}")
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_USER}@{PG_HOST}:{PG_PORT} ({type(exc).__name__})")
    try:
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def run_scenario(
    script: Path, tmp_path: Path, database_url: str | None, *, env: dict[str, str] | None = None, timeout: int = 600
) -> tuple[Any, str]:
    """Run ``script OUT`` with a fresh AIRFLOW_HOME under ``tmp_path``; (the JSON it wrote, its output)."""
    import pytest

    home = tmp_path / "airflow-home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "PYTEST_"))}
    clean.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **(env or {}),
        }
    )
    if database_url:
        clean["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], env=clean, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    logs = proc.stdout + proc.stderr
    if proc.returncode:
        pytest.fail(f"scenario {script.name} failed (rc={proc.returncode}):\n{logs[-6000:]}")
    return json.loads(out.read_text()), logs


def create_dag_run(dag_id: str, run_id: str) -> None:
    """Scenario side: migrate the database, sync the DAGs folder and create one run of ``dag_id``."""
    from airflow._shared.timezones import timezone
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import get_or_create_dagrun
    from airflow.utils.db import initdb
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    initdb()
    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        assert dag is not None, f"the scenario DAG {dag_id} was not synced"
        now = timezone.utcnow()
        get_or_create_dagrun(
            dag=dag,
            run_id=run_id,
            logical_date=None,
            data_interval=None,
            run_after=now,
            conf=None,
            triggered_by=DagRunTriggeredByType.TEST,
            triggering_user_name="scenario",
            start_date=now,
            session=session,
        )
