"""Put N task instances of a paused run in the deferred state, as the Execution API does when they defer.

Why: one worker run (fork, parse, submit, defer through the api-server) costs 0.3-0.6 s of the two
cores, so deferring 2 x 1,000 tasks through workers alone would take 10-20 minutes. The triggerer,
the receiver and the resume path do not see the difference: each task instance gets the trigger
row its operator would create (``VeoTrigger`` built with VeoOperator's own defaults, or Airflow's
``DateTimeTrigger``), ``next_method``/``next_kwargs`` as the task runner serializes them, and, for
Veo, the submission ledger in the task state store. Figure 3 runs the real operator end to end.

Runs in a subprocess with the cluster's environment (``python -m benchmarks._seed < spec.json``).
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any


def _trigger(kind: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if kind == "floor":
        from airflow._shared.timezones import timezone
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        return DateTimeTrigger(moment=timezone.parse(args["moment"])).serialize()
    from veo_provider.triggers.veo import VeoTrigger

    return VeoTrigger(**args).serialize()


def seed(spec: dict[str, Any]) -> int:
    """Defer every listed map index of the run; returns how many were deferred."""
    from airflow._shared.state import TaskScope
    from airflow._shared.timezones import timezone
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import Trigger
    from airflow.sdk.serde import serialize
    from airflow.state import get_state_backend
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from veo_provider.ledger import LEDGER_KEY

    dag_id, run_id, task_id = spec["dag_id"], spec["run_id"], spec["task_id"]
    now = timezone.utcnow()
    with create_session() as session:
        query = select(TI).where(TI.dag_id == dag_id, TI.run_id == run_id, TI.task_id == task_id)
        tis = {ti.map_index: ti for ti in session.scalars(query)}
        for item in spec["items"]:
            ti = tis[item["map_index"]]
            # Deferred a minute ago, as a task waiting on a real job: callbacks for a task deferred
            # less than RESUME_HOLD ago are left to its trigger's early check (Airflow's resume race).
            trigger = Trigger(*_trigger(spec["kind"], item["trigger"]), created_date=now - timedelta(minutes=1))
            session.add(trigger)
            session.flush()
            ti.state = TaskInstanceState.DEFERRED
            ti.try_number = 1
            ti.start_date = ti.queued_dttm = now
            ti.trigger_id = trigger.id
            ti.next_method = "execute_complete"
            ti.next_kwargs = serialize({})
            ti.trigger_timeout = now + timedelta(seconds=spec["timeout_seconds"])
            if item.get("ledger"):
                scope = TaskScope(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=ti.map_index)
                get_state_backend().set(scope, LEDGER_KEY, json.dumps(item["ledger"]), session=session)
    return len(spec["items"])


if __name__ == "__main__":
    print(json.dumps({"deferred": seed(json.load(sys.stdin))}))
