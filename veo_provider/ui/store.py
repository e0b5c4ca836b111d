"""Reads what the Videos views show from Airflow's metadata database, in a constant number of queries.

One query per table (task instances, their XComs, their ledger entries, their rendered fields)
for a whole DAG run or a whole page of the gallery, whatever the number of task instances; the
api-server imports this. The ledger entries are in the task state store on Airflow 3.3+, in the
ledger's fallback Variables before (read through ``ledger.database``, which decrypts them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from veo_provider import compat
from veo_provider.ledger import database
from veo_provider.ledger.keys import LEDGER_KEY
from veo_provider.ui.videos import VEO_OPERATORS, TaskInstanceFacts, recorded_output_path

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["TI_COLUMNS", "facts_of", "load_task_instances", "recorded_output", "where_keys"]

log = logging.getLogger(__name__)

RESULT_KEY = "return_value"
JOB_ID_KEY = "veo_task_id"

#: A task instance's key: dag_id, run_id, task_id, map_index.
TiKey = tuple[str, str, str, int]
#: What is read of a task instance row (``facts_of`` takes rows with these columns).
TI_COLUMNS = (
    "dag_id", "run_id", "task_id", "map_index", "state", "operator", "custom_operator_name", "start_date",
    "end_date", "duration", "try_number",
)  # fmt: skip


def _where_ti(model: Any, dag_id: str, run_id: str, task_id: str | None, map_index: int | None) -> list[Any]:
    clauses = [model.dag_id == dag_id, model.run_id == run_id]
    if task_id is not None:
        clauses.append(model.task_id == task_id)
    if map_index is not None:
        clauses.append(model.map_index == map_index)
    return clauses


def _key(row: Any) -> TiKey:
    return (row.dag_id, row.run_id, row.task_id, row.map_index)


def _xcoms(session: Session, where: list[Any]) -> dict[tuple[TiKey, str], Any]:
    from airflow.models.xcom import XComModel

    rows = session.scalars(select(XComModel).where(*where, XComModel.key.in_((RESULT_KEY, JOB_ID_KEY))))
    out: dict[tuple[TiKey, str], Any] = {}
    for row in rows:
        try:
            out[(_key(row), row.key)] = XComModel.deserialize_value(row)
        except (ValueError, TypeError):  # a value this version cannot read is shown as absent
            log.warning("Unreadable XCom %s of %s[%s]", row.key, row.task_id, row.map_index)
    return out


def _ledgers(session: Session, tis: Sequence[Any], where: Any) -> dict[TiKey, dict[str, Any]]:
    """Ledger entries of the task instances ``tis`` (which ``where(model)`` selects), one query.

    On 3.3+ they are in the task state store; before, in the fallback's Variables, one per task
    instance: their keys are computed from ``tis``, so the read is one ``IN`` whatever their number.
    """
    if not compat.HAS_TASK_STATE_STORE:
        return {_key(ref): value for ref, value in database.fallback_values(session, tis, LEDGER_KEY).items()}
    from airflow.models.task_state_store import TaskStateStoreModel as TSS

    rows = session.execute(
        select(TSS.dag_id, TSS.run_id, TSS.task_id, TSS.map_index, TSS.value).where(*where(TSS), TSS.key == LEDGER_KEY)
    )
    out: dict[TiKey, dict[str, Any]] = {}
    for row in rows:
        try:
            value = json.loads(row.value) if isinstance(row.value, str) else row.value
        except ValueError:
            continue
        if isinstance(value, dict):
            out[_key(row)] = value
    return out


def _rendered(session: Session, where: list[Any]) -> dict[TiKey, dict[str, Any]]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF

    rows = session.execute(
        select(RTIF.dag_id, RTIF.run_id, RTIF.task_id, RTIF.map_index, RTIF.rendered_fields).where(*where)
    )
    return {_key(r): r.rendered_fields for r in rows if isinstance(r.rendered_fields, dict)}


def _is_veo(row: Any) -> bool:
    return bool({row.custom_operator_name, row.operator} & VEO_OPERATORS)


def facts_of(session: Session, tis: Sequence[Any], where: Any) -> list[TaskInstanceFacts]:
    """The facts of the Veo task instances among ``tis`` (rows with ``TI_COLUMNS``), three queries.

    ``where(model)`` selects at least those task instances in another table (a run, or their keys).
    A task under another operator name counts as Veo when it has a ledger entry.
    """
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.xcom import XComModel

    ledgers = _ledgers(session, tis, where)
    # Only Veo tasks' XComs and rendered fields are read: another task's XCom may be large.
    # A subclass under another name is known by its ledger (then all the task's instances are Veo).
    known = {(r.dag_id, r.task_id) for r in tis if _is_veo(r)} | {(d, t) for d, _, t, _ in ledgers}
    veo = [r for r in tis if (r.dag_id, r.task_id) in known]
    if not veo:
        return []
    veo_tasks = {r.task_id for r in veo}
    xcoms = _xcoms(session, [*where(XComModel), XComModel.task_id.in_(veo_tasks)])
    rendered = _rendered(session, [*where(RTIF), RTIF.task_id.in_(veo_tasks)])
    return [
        TaskInstanceFacts(
            task_id=row.task_id,
            map_index=row.map_index,
            state=getattr(row.state, "value", row.state),
            operator=row.custom_operator_name or row.operator,
            start_date=row.start_date,
            end_date=row.end_date,
            duration=row.duration,
            try_number=row.try_number or 0,
            result=xcoms.get((_key(row), RESULT_KEY)),
            pushed_job_id=xcoms.get((_key(row), JOB_ID_KEY)),
            ledger=ledgers.get(_key(row), {}),
            rendered=rendered.get(_key(row), {}),
            dag_id=row.dag_id,
            run_id=row.run_id,
        )
        for row in veo
    ]


def where_keys(keys: Sequence[TiKey]) -> Any:
    """``where(model)`` for exactly these task instances (a row-value IN: one query, any dialect)."""
    return lambda model: [tuple_(model.dag_id, model.run_id, model.task_id, model.map_index).in_(list(keys))]


def load_task_instances(
    session: Session, dag_id: str, run_id: str, task_id: str | None = None, map_index: int | None = None
) -> list[TaskInstanceFacts]:
    """The Veo task instances of a run (or one task / one task instance), in task and map order."""
    from airflow.models.taskinstance import TaskInstance as TI

    tis = session.execute(
        select(*(getattr(TI, c) for c in TI_COLUMNS))
        .where(*_where_ti(TI, dag_id, run_id, task_id, map_index))
        .order_by(TI.task_id, TI.map_index)
    ).all()
    if not tis:
        return []
    return facts_of(session, tis, lambda model: _where_ti(model, dag_id, run_id, task_id, map_index))


def recorded_output(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The file this task instance wrote: its XCom result's path, if the worker rendered it (two queries)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.xcom import XComModel

    row = session.scalars(
        select(XComModel).where(*_where_ti(XComModel, dag_id, run_id, task_id, map_index), XComModel.key == RESULT_KEY)
    ).first()
    if row is None:
        return None
    rendered = _rendered(session, _where_ti(RTIF, dag_id, run_id, task_id, map_index))
    return recorded_output_path(
        XComModel.deserialize_value(row), rendered.get((dag_id, run_id, task_id, map_index), {})
    )
