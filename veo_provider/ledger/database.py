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


def _metastore_backend() -> bool:
    """True when the task state store is Airflow's metadata-database backend (the default)."""
    try:
        from airflow.state import get_state_backend
        from airflow.state.metastore import MetastoreBackend
    except ImportError:  # no task state store in this Airflow
        return False
    return type(get_state_backend()) is MetastoreBackend


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

    def __init__(
        self, session: Session, ref: TaskInstanceRef, row: Any, preloaded: dict[str, str | None] | None = None
    ) -> None:
        self.session = session
        self.ref = ref
        #: Airflow's ``TaskInstance`` ORM row (its ``dag_run`` comes with it, its ``trigger`` loads on access).
        self.row = row
        #: Stored values read with the row (raw, None if absent), kept in step with ``write``.
        self._preloaded = dict(preloaded or {})

    @classmethod
    def find(
        cls, session: Session, ref: TaskInstanceRef, *, lock: bool = False, preload: tuple[str, ...] = ()
    ) -> TaskInstanceRecord | None:
        """The task instance, or None if there is none; ``lock``: its row is locked until the session ends.

        ``preload``: these task-state-store keys, and the TI's trigger, are read in the same statement
        (one database round trip instead of one each) when the state backend is the metadata database.
        """
        from airflow.models.taskinstance import TaskInstance as TI
        from sqlalchemy import select

        where: tuple[Any, ...] = (TI.dag_id == ref.dag_id, TI.run_id == ref.run_id, TI.task_id == ref.task_id)
        where += (TI.map_index == ref.map_index,)
        if preload and _metastore_backend():
            return cls._find_preloaded(session, ref, where, lock, preload)
        query = select(TI).where(*where)
        row = session.scalar(query.with_for_update(of=TI) if lock else query)
        return cls(session, ref, row) if row is not None else None

    @classmethod
    def _find_preloaded(
        cls, session: Session, ref: TaskInstanceRef, where: tuple[Any, ...], lock: bool, keys: tuple[str, ...]
    ) -> TaskInstanceRecord | None:
        from airflow.models.task_state_store import TaskStateStoreModel as Stored
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.models.trigger import Trigger
        from sqlalchemy import select
        from sqlalchemy.orm import contains_eager

        def value_of(key: str) -> Any:  # correlated to the TI row, as the backend's own read
            return (
                select(Stored.value)
                .where(Stored.dag_id == TI.dag_id, Stored.run_id == TI.run_id, Stored.task_id == TI.task_id)
                .where(Stored.map_index == TI.map_index, Stored.key == key)
                .scalar_subquery()
            )

        query = (
            select(TI, *(value_of(key) for key in keys))
            .outerjoin(Trigger, TI.trigger_id == Trigger.id)
            .options(contains_eager(TI.trigger))
            .where(*where)
        )
        found = session.execute(query.with_for_update(of=TI) if lock else query).one_or_none()
        if found is None:
            return None
        return cls(session, ref, found[0], dict(zip(keys, found[1:], strict=True)))

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
        if key in self._preloaded:
            raw = self._preloaded[key]
        else:
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

        if expires_at is None:
            days = conf.getint("state_store", "default_retention_days", fallback=0)
            expires_at = datetime.now(timezone.utc) + timedelta(days=days) if days > 0 else None
        encoded = json.dumps(value)
        if _metastore_backend():
            self._upsert(key, encoded, expires_at)
        else:
            from airflow.state import get_state_backend

            get_state_backend().set(self._scope(), key, encoded, expires_at=expires_at, session=self.session)
        if key in self._preloaded:
            self._preloaded[key] = encoded

    def _upsert(self, key: str, encoded: str, expires_at: datetime | None) -> None:
        """The metadata backend's own upsert statement, with the DAG run id the row came with
        (the backend would look it up first: one more round trip)."""
        from airflow.models.task_state_store import TaskStateStoreModel
        from airflow.state.metastore import _build_upsert_stmt
        from airflow.utils.sqlalchemy import get_dialect_name

        now = datetime.now(timezone.utc)
        ref = self.ref
        values = dict(dag_run_id=self.row.dag_run.id, dag_id=ref.dag_id, run_id=ref.run_id, task_id=ref.task_id)
        values.update(map_index=ref.map_index, key=key, value=encoded, updated_at=now, expires_at=expires_at)
        update = dict(value=encoded, updated_at=now, expires_at=expires_at)
        conflict = ["dag_run_id", "task_id", "map_index", "key"]
        dialect = get_dialect_name(self.session)
        self.session.execute(_build_upsert_stmt(dialect, TaskStateStoreModel, conflict, values, update))

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
