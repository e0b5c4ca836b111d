"""The receiver inside Airflow's own api-server app, on a real metadata database (run as a subprocess).

``test_airflow_port.py`` runs this with a fresh AIRFLOW_HOME (SQLite, or PostgreSQL through
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) and reads the JSON it writes to ``argv[1]``. A subprocess
keeps Airflow's settings, ORM and plugin registry of this database out of the test process.
With ``VEO_SCENARIO_LEDGER=variables`` the ledger lives where it lives before Airflow 3.3 (the
fallback's Variables, ``compat.HAS_TASK_STATE_STORE`` switched off), on this Airflow's tables.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.metadata_db import create_dag_run

SECRET = "scenario-callback-secret-0123456789abcdef"
DAG_ID = "veo_callback_scenario"
RUN_ID = "manual__scenario"
SUCCESS = {
    "success": True,
    "task_id": "job-1",
    "trace_id": "tr-1",
    "data": [{"id": "v-1", "video_url": "https://cdn.example/v.mp4", "state": "succeeded"}],
}
LOST = {**SUCCESS, "task_id": "job-2", "trace_id": "tr-2"}

DAG_FILE = f'''
from airflow.providers.common.compat.sdk import DAG, BaseOperator


class Noop(BaseOperator):
    def execute(self, context):
        return None


with DAG("{DAG_ID}", schedule=None):
    Noop(task_id="make_video")
    Noop(task_id="lost_answer")
'''
PLUGIN_FILE = "from veo_provider.plugin import VeoPlugin  # noqa: F401\n"
#: Where the ledger lives: "state_store" (Airflow 3.3+) or "variables" (the fallback below 3.3).
LEDGER = os.environ.get("VEO_SCENARIO_LEDGER", "state_store")
KEYS = ("veo_submission", "veo_callback")


def write_files(home: Path) -> None:
    (home / "dags").mkdir(parents=True, exist_ok=True)
    (home / "plugins").mkdir(parents=True, exist_ok=True)
    (home / "dags" / "scenario_dag.py").write_text(DAG_FILE)
    (home / "plugins" / "veo_callbacks.py").write_text(PLUGIN_FILE)


def setup_database() -> None:
    """Migrate, sync the DAG, create its run; defer one TI on a VeoTrigger, leave one with a lost answer."""
    from airflow._shared.timezones import timezone
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    create_dag_run(DAG_ID, RUN_ID)
    with create_session() as session:
        now = timezone.utcnow()
        tis = {ti.task_id: ti for ti in session.scalars(select(TI).where(TI.dag_id == DAG_ID))}
        trigger = Trigger(
            "veo_provider.triggers.veo.VeoTrigger",
            {
                "conn_id": "veo_cb",
                "veo_task_id": "job-1",
                "deadline": time.time() + 3600,
                "poll_interval": 15.0,
                "first_poll_delay": 10.0,
                "submission_key": "key-1",
                "wait_mode": "callback",
            },
        )
        trigger.created_date = now - timedelta(seconds=60)  # deferred a while ago (see RESUME_HOLD)
        session.add(trigger)
        session.flush()
        deferred = tis["make_video"]
        deferred.state, deferred.try_number = TaskInstanceState.DEFERRED, 1
        deferred.trigger_id, deferred.next_method, deferred.next_kwargs = trigger.id, "execute_complete", {}
        lost = tis["lost_answer"]
        lost.state, lost.try_number = TaskInstanceState.FAILED, 1

        for task_id, entry in (
            ("make_video", {"state": "submitted", "key": "key-1", "task_id": "job-1", "conn_id": "veo_cb"}),
            # Written by this version: the connection of the submission is recorded.
            ("lost_answer", {"state": "submitting", "key": "key-2", "task_id": None, "conn_id": "veo_cb"}),
        ):
            entry = {**entry, "endpoint": "videos", "at": "2026-01-01T00:00:00+00:00"}
            write_ledger(session, task_id, entry)


def write_ledger(session: Any, task_id: str, entry: dict[str, Any]) -> None:
    """The worker's ledger entry, stored as the Execution API stores it (task state store, or a Variable)."""
    if LEDGER == "variables":
        from airflow.models.variable import Variable

        from veo_provider.ledger import variables
        from veo_provider.ledger.database import TaskInstanceRef

        ref = TaskInstanceRef(DAG_ID, RUN_ID, task_id)
        envelope = variables.wrap(ref, "veo_submission", entry)  # as the worker's VariableStore sets it
        Variable.set(variables.variable_key(ref, "veo_submission"), envelope, serialize_json=True, session=session)
        return
    from airflow._shared.state import TaskScope
    from airflow.state import get_state_backend

    scope = TaskScope(dag_id=DAG_ID, run_id=RUN_ID, task_id=task_id, map_index=-1)
    get_state_backend().set(scope, "veo_submission", json.dumps(entry), session=session)


def signed_path(task_id: str, key: str, **kw: Any) -> str:
    from veo_provider.callbacks.signing import CallbackTarget, sign_callback_url

    fields: dict[str, Any] = {
        "dag_id": DAG_ID,
        "run_id": RUN_ID,
        "task_id": task_id,
        "map_index": -1,
        "submission_key": key,
        "conn_id": "veo_cb",
        "expires_at": int(time.time()) + 600,
    }
    url = sign_callback_url("http://testserver/veo", CallbackTarget(**{**fields, **kw}), SECRET)
    return urlsplit(url).path + "?" + urlsplit(url).query


def worker_view(task_id: str) -> dict[str, Any]:
    """TI state and what the worker's ledger store (``context["task_state_store"]``, or its Variables) returns."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.sdk.serde import deserialize
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TI).where(TI.dag_id == DAG_ID, TI.task_id == task_id))
        assert ti is not None
        store = {key: read_stored(session, ti, key) for key in KEYS}
        return {
            "state": getattr(ti.state, "value", ti.state),
            "trigger_id": ti.trigger_id,
            "next_method": ti.next_method,
            "next_kwargs": deserialize(ti.next_kwargs) if ti.next_kwargs else ti.next_kwargs,
            "store": store,
        }


def read_stored(session: Any, ti: Any, key: str) -> Any:
    """What the worker reads of ``key``: through the Execution API route itself, or its Variable."""
    if LEDGER == "variables":
        from airflow.models.variable import Variable

        from veo_provider.ledger import variables

        return variables.unwrap(ti, key, Variable.get(variables.variable_key(ti, key), default_var=None))
    from airflow.api_fastapi.execution_api.routes.task_state_store import get_task_state_store
    from fastapi import HTTPException

    try:
        return get_task_state_store(ti.id, key, session).value
    except HTTPException:
        return None


class RoundTrips:
    """Counts what the api-server sends the metadata database: each statement, each commit and rollback."""

    def __init__(self) -> None:
        from airflow import settings
        from sqlalchemy import event

        self.sent: list[str] = []
        event.listen(settings.engine, "before_cursor_execute", self._statement)
        for name in ("commit", "rollback"):
            event.listen(settings.engine, name, lambda conn, name=name: self.sent.append(name.upper()))

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name != "veo-ledger-sweeper":  # the fallback's housekeeping, not a callback
            self.sent.append(" ".join(statement.split())[:160])

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


def main(out: str) -> None:
    if LEDGER == "variables":
        from veo_provider import compat

        compat.HAS_TASK_STATE_STORE = False  # as below Airflow 3.3, where it is the version's own answer
    write_files(Path(os.environ["AIRFLOW_HOME"]))
    os.environ["AIRFLOW_CONN_VEO_CB"] = json.dumps({"conn_type": "veo", "extra": {"callback_secret": SECRET}})
    setup_database()

    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    app = create_app(apps="core")  # Airflow's api-server app: plugins, access log middleware and all
    result: dict[str, Any] = {"paths": {}, "answers": {}, "round_trips": {}, "ledger": LEDGER}
    cases = {
        "success": (signed_path("make_video", "key-1"), SUCCESS),
        "replay": (signed_path("make_video", "key-1"), SUCCESS),  # the task no longer waits: kept once
        "duplicate": (signed_path("make_video", "key-1"), SUCCESS),
        "lost_answer": (signed_path("lost_answer", "key-2"), LOST),
        "stale_key": (signed_path("lost_answer", "key-old"), LOST),
        "unknown_conn": (signed_path("lost_answer", "key-2", conn_id="veo_nope"), LOST),
    }
    # The test client (httpx, or httpx2 when installed) logs the URLs it calls: that is this
    # harness's log, not the api-server's, which is what the test reads for signatures.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with TestClient(app) as client:
        client.post(signed_path("make_video", "key-warm-up"), json=SUCCESS)  # first-use loading is not counted
        trips = RoundTrips()
        for name, (path, body) in cases.items():
            trips.take()
            r = client.post(path, json=body)
            result["round_trips"][name] = trips.take()
            result["answers"][name] = [r.status_code, r.json()]
            result["paths"][name] = path
            if name == "success":
                result["after_success"] = worker_view("make_video")
    result["signatures"] = [dict(parse_qsl(urlsplit(p).query))["sig_token"] for p in result["paths"].values()]
    result["make_video"] = worker_view("make_video")
    result["lost_answer"] = worker_view("lost_answer")
    Path(out).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
