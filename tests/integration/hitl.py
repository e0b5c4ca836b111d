"""Answers a human-in-the-loop task from outside `airflow dags test`, through the HITL REST route's own function.

``airflow dags test`` keeps a HITL task waiting (``awaiting_input`` on Airflow 3.3+, ``deferred`` on its
HITL trigger on 3.1 and 3.2) until a response is recorded from
outside (the UI's *Required actions* or the REST route ``PATCH .../hitlDetails``). This runs in
the same Airflow home, waits for the task to ask, and records the answer with the route's function
(its checks, its resume of the task), as a signed-in reviewer would.

    python -m tests.integration.hitl DAG_ID TASK_ID OPTION
"""

from __future__ import annotations

import sys
import time

__all__ = ["answer"]


def answer(dag_id: str, task_id: str, option: str, timeout: float = 150) -> str:
    """Wait for ``task_id`` to await input, answer ``option``; the run id."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    # The state a task asking a person is in: its own from 3.3, deferred on the HITL trigger before.
    asking = getattr(TaskInstanceState, "AWAITING_INPUT", TaskInstanceState.DEFERRED)
    deadline = time.monotonic() + timeout
    while True:
        with create_session() as session:
            ti = session.scalars(
                select(TI)
                .join(HITLDetail, HITLDetail.ti_id == TI.id)
                .where(TI.dag_id == dag_id, TI.task_id == task_id, TI.state == asking)
            ).first()
            if ti is not None:
                run_id = ti.run_id
                update_hitl_detail(
                    dag_id=dag_id,
                    dag_run_id=run_id,
                    task_id=task_id,
                    update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                    user=SimpleAuthManagerUser(username="reviewer", role="admin"),
                    session=session,
                    map_index=ti.map_index,
                )
                return run_id
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id}.{task_id} did not ask for input within {timeout:.0f} s")
        time.sleep(0.5)


if __name__ == "__main__":
    print(answer(*sys.argv[1:4]))
