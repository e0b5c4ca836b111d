"""The spending-cap counter on a real metadata database, and its route in Airflow's own api-server app.

``test_counter.py`` runs this in a subprocess with a fresh AIRFLOW_HOME (SQLite, or PostgreSQL
through AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) and reads the JSON it writes to ``argv[1]``.
A subprocess keeps Airflow's settings, ORM and plugin registry of this database out of the
test process.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from tests.metadata_db import create_dag_run

DAG_ID = "veo_cap_scenario"
RUN_ID = "manual__cap_scenario"
SECRET = "scenario-spending-cap-secret-0123456789abcdef"
#: (task id prefix, how many tasks, connection, daily limit): each group counts on its own counter.
RACES = [("race", 16, "veo_race", 3), ("first", 5, "veo_first", 1)]
#: Tasks the route is tried on: two running under a limit of 1, one already finished.
ROUTE_TASKS = {"capped": "running", "capped_2": "running", "done": "success"}
#: Variables the retention delete must keep or drop (a user's own Variables among them).
OLD = "2000-01-01"
RETENTION_CASES = {
    f"veo_quota:day:{OLD}:old_conn": "dropped",
    f"veo_quota:run:{OLD}:0123456789abcdef01234567": "dropped",
    f"veo-quota:day:{OLD}:x": "kept",  # "_" is a LIKE wildcard: a user's key that LIKE would match
    f"veoXquota:run:{OLD}:x": "kept",
    f"VEO_QUOTA:day:{OLD}:x": "kept",
    "veo_quota:day:not-a-date": "kept",
}


def task_ids() -> list[str]:
    return [f"{prefix}_{i}" for prefix, n, _, _ in RACES for i in range(n)] + list(ROUTE_TASKS)


def write_files(home: Path) -> None:
    (home / "dags").mkdir(parents=True, exist_ok=True)
    (home / "plugins").mkdir(parents=True, exist_ok=True)
    tasks = "\n".join(f"    Noop(task_id={t!r})" for t in task_ids())
    (home / "dags" / "cap_scenario_dag.py").write_text(
        "from airflow.providers.common.compat.sdk import DAG, BaseOperator\n\n\nclass Noop(BaseOperator):\n"
        "    def execute(self, context):\n        return None\n\n\n"
        f'with DAG("{DAG_ID}", schedule=None):\n{tasks}\n'
    )
    (home / "plugins" / "veo_callbacks.py").write_text("from veo_provider.plugin import VeoPlugin  # noqa: F401\n")


def ledger_of(task_id: str) -> dict[str, Any]:
    for prefix, _, conn_id, limit in RACES:
        if task_id.startswith(f"{prefix}_"):
            return {
                "state": "submitting",
                "key": f"key-{task_id}",
                "conn_id": conn_id,
                "caps": {"daily_job_limit": limit},
            }
    return {"state": "submitting", "key": f"key-{task_id}", "conn_id": "veo_route", "caps": {"daily_job_limit": 1}}


def setup_database() -> dict[str, str]:
    """Migrate, sync the DAG, create its run with every TI running (but ``done``) and its ledger; the TI ids."""
    from airflow._shared.state import TaskScope
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.state import get_state_backend
    from airflow.utils.session import create_session
    from sqlalchemy import select

    create_dag_run(DAG_ID, RUN_ID)
    with create_session() as session:
        backend = get_state_backend()
        ids = {}
        for ti in session.scalars(select(TI).where(TI.dag_id == DAG_ID)):
            ti.state, ti.try_number = ROUTE_TASKS.get(ti.task_id, "running"), 1
            ids[ti.task_id] = str(ti.id)
            entry = {**ledger_of(ti.task_id), "endpoint": "videos", "at": "2026-01-01T00:00:00+00:00"}
            scope = TaskScope(dag_id=DAG_ID, run_id=RUN_ID, task_id=ti.task_id, map_index=-1)
            backend.set(scope, "veo_submission", json.dumps(entry), session=session)
        return ids


def request_of(task_id: str, ti_ids: dict[str, str], **changes: Any) -> Any:
    from veo_provider.spending.rules import CapRequest

    fields = {"action": "reserve", "dag_id": DAG_ID, "run_id": RUN_ID, "task_id": task_id, "map_index": -1}
    return CapRequest(**{**fields, "key": f"key-{task_id}", "ti_id": ti_ids[task_id], **changes})


def counters() -> dict[str, Any]:
    """The spending cap's Variables, decrypted by Airflow's own model."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(Variable).where(Variable.key.startswith("veo_quota:", autoescape=True)))
        return {v.key: {**json.loads(v.val), "encrypted": v.is_encrypted} for v in rows}


def race(prefix: str, n: int, ti_ids: dict[str, str]) -> dict[str, Any]:
    """``n`` reserves at once, each in its own thread and session."""
    from veo_provider.spending import counter

    barrier = threading.Barrier(n)
    outcome: dict[str, Any] = {}

    def one(task_id: str) -> None:
        request = request_of(task_id, ti_ids)
        barrier.wait()
        try:
            outcome[task_id] = counter.count(request).granted
        except Exception as exc:
            outcome[task_id] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=one, args=(f"{prefix}_{i}",)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcome


def retention() -> dict[str, bool]:
    """Which of RETENTION_CASES survive the retention delete."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from veo_provider.spending import counter

    with create_session() as session:
        for key in RETENTION_CASES:
            session.add(Variable(key=key, val="{}"))
    counter._cleaned_on.clear()
    counter._drop_old_counters(datetime.now(timezone.utc).date())
    with create_session() as session:
        left = set(session.scalars(select(Variable.key)))
    return {key: key in left for key in RETENTION_CASES}


def route_cases(ti_ids: dict[str, str]) -> list[tuple[str, dict[str, str], Any]]:
    """(name, headers, body) sent in order to ``/veo/quota``; the route counter allows one job."""
    from veo_provider.spending.credential import deployment_key, issue_credential

    key = deployment_key()

    def bearer(task_id: str, **kw: Any) -> dict[str, str]:
        now = kw.pop("now", None)
        return {"Authorization": f"Bearer {issue_credential(request_of(task_id, ti_ids, **kw), key, now=now)}"}

    genuine = bearer("capped")
    version, payload, sig = genuine["Authorization"].removeprefix("Bearer ").split(".")
    body = request_of("capped", ti_ids).model_dump()
    return [
        ("no_credential", {}, body),
        ("no_credential_huge_map_index", {}, {**body, "map_index": 2**70}),
        ("forged_signature", {"Authorization": f"Bearer {version}.{payload}.{sig[:-4]}AAAA"}, body),
        (
            "other_deployment",
            {"Authorization": f"Bearer {issue_credential(request_of('capped', ti_ids), b'x' * 32)}"},
            None,
        ),
        ("expired", bearer("capped", now=time.time() - 3600), None),
        ("grant", genuine, None),
        ("grant_again", genuine, {**body, "task_id": "capped_2", "key": "key-capped_2"}),
        ("over_the_cap", bearer("capped_2"), None),
        ("previous_try", bearer("capped_2", ti_id="0190a000-0000-7000-8000-000000000000"), None),
        ("wrong_key", bearer("capped_2", key="key-capped"), None),
        ("not_running", bearer("done"), None),
        ("release_unproven", bearer("capped", action="release"), None),
    ]


def run_route(ti_ids: dict[str, str]) -> dict[str, Any]:
    """Each route case against Airflow's real api-server app; SQL statements run while unauthenticated."""
    import logging

    from airflow import settings
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    app = create_app(apps="core")
    statements: list[str] = []
    event.listen(settings.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    out: dict[str, Any] = {"answers": {}, "statements": {}, "changed": {}}
    with TestClient(app) as client:
        for name, headers, body in route_cases(ti_ids):
            before = counters()
            seen = len(statements)
            answer = client.post("/veo/quota", headers=headers, json=body if body is not None else {})
            out["answers"][name] = [answer.status_code, answer.json()]
            out["statements"][name] = len(statements) - seen
            out["changed"][name] = counters() != before
    return out


def main(out: str) -> None:
    os.environ["AIRFLOW__VEO__SPENDING_CAP_SECRET"] = SECRET
    write_files(Path(os.environ["AIRFLOW_HOME"]))
    ti_ids = setup_database()
    result: dict[str, Any] = {"races": {}, "dialect": None}
    for prefix, n, _, _ in RACES:
        result["races"][prefix] = race(prefix, n, ti_ids)
    result["route"] = run_route(ti_ids)
    result["retention"] = retention()
    result["counters"] = counters()
    result["today"] = str(date.today())
    from airflow import settings

    result["dialect"] = settings.engine.dialect.name
    Path(out).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
