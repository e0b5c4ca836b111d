"""Reads what the Videos views show from Airflow's metadata database, in a constant number of queries.

One query per table for a whole DAG run (task instances, their XComs, their ledger entries, their
rendered fields), whatever the number of mapped task instances; the api-server imports this.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from veo_provider.ledger.keys import LEDGER_KEY
from veo_provider.ui.videos import VEO_OPERATORS, TaskInstanceFacts, recorded_output_path

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["load_task_instances", "recorded_output"]

log = logging.getLogger(__name__)

RESULT_KEY = "return_value"
JOB_ID_KEY = "veo_task_id"

TiKey = tuple[str, int]


def _where_ti(model: Any, dag_id: str, run_id: str, task_id: str | None, map_index: int | None) -> list[Any]:
    clauses = [model.dag_id == dag_id, model.run_id == run_id]
    if task_id is not None:
        clauses.append(model.task_id == task_id)
    if map_index is not None:
        clauses.append(model.map_index == map_index)
    return clauses


def _xcoms(session: Session, where: list[Any]) -> dict[tuple[TiKey, str], Any]:
    from airflow.models.xcom import XComModel

    rows = session.scalars(select(XComModel).where(*where, XComModel.key.in_((RESULT_KEY, JOB_ID_KEY))))
    out: dict[tuple[TiKey, str], Any] = {}
    for row in rows:
        try:
            out[((row.task_id, row.map_index), row.key)] = XComModel.deserialize_value(row)
        except (ValueError, TypeError):  # a value this version cannot read is shown as absent
            log.warning("Unreadable XCom %s of %s[%s]", row.key, row.task_id, row.map_index)
    return out


def _ledgers(
    session: Session, dag_id: str, run_id: str, task_id: str | None, map_index: int | None
) -> dict[TiKey, dict[str, Any]]:
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:  # Airflow < 3.3 has no task state store
        return {}
    where = _where_ti(TaskStateStoreModel, dag_id, run_id, task_id, map_index)
    rows = session.execute(
        select(TaskStateStoreModel.task_id, TaskStateStoreModel.map_index, TaskStateStoreModel.value).where(
            *where, TaskStateStoreModel.key == LEDGER_KEY
        )
    )
    out: dict[TiKey, dict[str, Any]] = {}
    for tid, index, raw in rows:
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if isinstance(value, dict):
            out[(tid, index)] = value
    return out


def _rendered(session: Session, where: list[Any]) -> dict[TiKey, dict[str, Any]]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF

    rows = session.execute(select(RTIF.task_id, RTIF.map_index, RTIF.rendered_fields).where(*where))
    return {(tid, index): fields for tid, index, fields in rows if isinstance(fields, dict)}


def load_task_instances(
    session: Session, dag_id: str, run_id: str, task_id: str | None = None, map_index: int | None = None
) -> list[TaskInstanceFacts]:
    """The Veo task instances of a run (or one task / one task instance), in task and map order."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel

    tis = session.execute(
        select(
            TI.task_id,
            TI.map_index,
            TI.state,
            TI.operator,
            TI.custom_operator_name,
            TI.start_date,
            TI.end_date,
            TI.duration,
            TI.try_number,
        )
        .where(*_where_ti(TI, dag_id, run_id, task_id, map_index))
        .order_by(TI.task_id, TI.map_index)
    ).all()
    if not tis:
        return []
    ledgers = _ledgers(session, dag_id, run_id, task_id, map_index)
    # Only Veo tasks' XComs and rendered fields are read: another task's XCom may be large.
    veo_tasks = {r.task_id for r in tis if {r.custom_operator_name, r.operator} & VEO_OPERATORS}
    veo_tasks |= {tid for tid, _ in ledgers}  # a subclass under another name, known by its ledger
    if not veo_tasks:
        return []
    where_xcom = [*_where_ti(XComModel, dag_id, run_id, task_id, map_index), XComModel.task_id.in_(veo_tasks)]
    xcoms = _xcoms(session, where_xcom)
    rendered = _rendered(session, [*_where_ti(RTIF, dag_id, run_id, task_id, map_index), RTIF.task_id.in_(veo_tasks)])
    facts = (
        TaskInstanceFacts(
            task_id=row.task_id,
            map_index=row.map_index,
            state=getattr(row.state, "value", row.state),
            operator=row.custom_operator_name or row.operator,
            start_date=row.start_date,
            end_date=row.end_date,
            duration=row.duration,
            try_number=row.try_number or 0,
            result=xcoms.get(((row.task_id, row.map_index), RESULT_KEY)),
            pushed_job_id=xcoms.get(((row.task_id, row.map_index), JOB_ID_KEY)),
            ledger=ledgers.get((row.task_id, row.map_index), {}),
            rendered=rendered.get((row.task_id, row.map_index), {}),
        )
        for row in tis
    )
    return [f for f in facts if f.task_id in veo_tasks]


def recorded_output(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The file this task instance wrote: its XCom result's path, if the worker rendered it (two queries)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.xcom import XComModel

    row = session.scalars(
        select(XComModel).where(*_where_ti(XComModel, dag_id, run_id, task_id, map_index), XComModel.key == RESULT_KEY)
    ).first()
    if row is None:
        return None
    rendered = _rendered(session, _where_ti(RTIF, dag_id, run_id, task_id, map_index)).get((task_id, map_index), {})
    return recorded_output_path(XComModel.deserialize_value(row), rendered)
