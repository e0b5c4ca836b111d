"""The metadata database's side of the ledger: any task instance and its stored state.

The api-server (callback receiver, spending cap) and a task running in-process (``airflow dags
test``) reach a task instance's ledger entry and stored callback here, in the same task state
store the worker writes through the Execution API, and in the same encoding (``json.dumps`` of
the value through the configured state backend), so ``context["task_state_store"].get(key)``
returns the dict this module wrote. This is the one place that uses Airflow's private
``airflow._shared.state.TaskScope``.

    with create_session() as session:
        record = TaskInstanceRecord.find(session, TaskInstanceRef.of(target), lock=True)
        if record is not None and record.ledger_entry() is not None:
            record.write(STORED_CALLBACK_KEY, stored.dump())
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from veo_provider.ledger.keys import LEDGER_KEY, STORED_CALLBACK_KEY
from veo_provider.models.records import LedgerEntry, StoredCallback

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["TaskInstanceRecord", "TaskInstanceRef", "create_session"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def create_session() -> Iterator[Session]:
    """One metadata-database session of its own, committed at the end (rolled back on error).

    Not Airflow's thread-scoped session: a request handled in a thread pool must not share or
    close a session another request is using.
    """
    from airflow.utils.session import create_session as airflow_session

    with airflow_session(scoped=False) as session:
        yield session


@dataclass(frozen=True)
class TaskInstanceRef:
    """Which task instance: what a callback URL or a spending-cap request names."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def of(cls, named: Any) -> TaskInstanceRef:
        """From anything with ``dag_id``, ``run_id``, ``task_id`` and ``map_index`` (None means -1)."""
        map_index = -1 if named.map_index is None else int(named.map_index)
        return cls(named.dag_id, named.run_id, named.task_id, map_index)


class TaskInstanceRecord:
    """One task instance's row and its task-state-store values, inside the caller's session."""

    def __init__(self, session: Session, ref: TaskInstanceRef, row: Any) -> None:
        self.session = session
        self.ref = ref
        #: Airflow's ``TaskInstance`` ORM row (its ``trigger`` and ``dag_run`` load on access).
        self.row = row

    @classmethod
    def find(cls, session: Session, ref: TaskInstanceRef, *, lock: bool = False) -> TaskInstanceRecord | None:
        """The task instance, or None if there is none; ``lock``: its row is locked until the session ends."""
        from airflow.models.taskinstance import TaskInstance as TI
        from sqlalchemy import select

        query = select(TI).where(
            TI.dag_id == ref.dag_id, TI.run_id == ref.run_id, TI.task_id == ref.task_id, TI.map_index == ref.map_index
        )
        row = session.scalar(query.with_for_update(of=TI) if lock else query)
        return cls(session, ref, row) if row is not None else None

    @property
    def state(self) -> str | None:
        """The task instance's state as a plain string (``"deferred"``, ``"running"``, ...)."""
        state = self.row.state
        return state.value if state is not None and hasattr(state, "value") else state

    @property
    def run_after(self) -> datetime | None:
        """When its DAG run was due (the run's own date, for counters that follow a run)."""
        return getattr(self.row.dag_run, "run_after", None)

    # ---------------------------------------------------------------- the task state store

    def _scope(self) -> Any:
        from airflow._shared.state import TaskScope

        ref = self.ref
        return TaskScope(dag_id=ref.dag_id, run_id=ref.run_id, task_id=ref.task_id, map_index=ref.map_index)

    def read(self, key: str) -> dict[str, Any] | None:
        """The dict stored under ``key``; None if nothing is, or it is not a JSON object."""
        from airflow.state import get_state_backend

        raw = get_state_backend().get(self._scope(), key, session=self.session)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def write(self, key: str, value: dict[str, Any], *, expires_at: datetime | None = None) -> None:
        """Store ``value`` under ``key``, as the Execution API would; kept ``[state_store]
        default_retention_days`` unless ``expires_at`` says otherwise."""
        from airflow.configuration import conf
        from airflow.state import get_state_backend

        if expires_at is None:
            days = conf.getint("state_store", "default_retention_days", fallback=0)
            expires_at = datetime.now(timezone.utc) + timedelta(days=days) if days > 0 else None
        get_state_backend().set(self._scope(), key, json.dumps(value), expires_at=expires_at, session=self.session)

    # --------------------------------------------------------------- typed stored values

    def ledger_entry(self) -> LedgerEntry | None:
        """The worker's ledger entry; None if there is none or it cannot be read (never trusted blindly)."""
        raw = self.read(LEDGER_KEY)
        try:
            return LedgerEntry.model_validate(raw) if raw is not None else None
        except ValueError:
            return None

    def stored_callback(self) -> StoredCallback | None:
        """The callback the receiver stored for this task instance, if any."""
        return StoredCallback.read(self.read(STORED_CALLBACK_KEY))

    def store_callback(self, stored: StoredCallback) -> None:
        self.write(STORED_CALLBACK_KEY, stored.dump())
