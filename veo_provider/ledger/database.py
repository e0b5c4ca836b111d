"""The metadata database's side of the ledger: any task instance and its stored state.

The api-server (callback receiver, spending cap) and a task running in-process (``airflow dags
test``) reach a task instance's ledger entry and stored callback here, in the same task state
store the worker writes through the Execution API, and in the same encoding (``json.dumps`` of
the value through the configured state backend), so ``context["task_state_store"].get(key)``
returns the dict this module wrote. Before Airflow 3.3 there is no task state store: the same
values live in Airflow Variables (``ledger/variables.py``), written here in the caller's session,
so the row lock, the stored callback and the counter commit together. ``compat`` decides which.

    with create_session() as session:
        record = TaskInstanceRecord.find(session, TaskInstanceRef.of(target), lock=True)
        if record is not None and record.ledger_entry() is not None:
            record.write(STORED_CALLBACK_KEY, stored.dump())
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from veo_provider import compat
from veo_provider.ledger import variables
from veo_provider.ledger.keys import LEDGER_KEY, STORED_CALLBACK_KEY
from veo_provider.models.records import LedgerEntry, StoredCallback

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "TaskInstanceRecord",
    "TaskInstanceRef",
    "create_session",
    "fallback_values",
    "start_sweeper",
    "sweep_fallback",
]

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

    def __init__(
        self, session: Session, ref: TaskInstanceRef, row: Any, preloaded: dict[str, Any] | None = None
    ) -> None:
        self.session = session
        self.ref = ref
        #: Airflow's ``TaskInstance`` ORM row (its ``dag_run`` and ``trigger`` load with it or on access).
        self.row = row
        #: Its DAG run's id and ``run_after``, when they were read with the row (its ``dag_run`` was not).
        self._run: tuple[int, datetime | None] | None = None
        #: Stored values read with the row (raw, None if absent), kept in step with ``write``.
        self._preloaded: dict[str, Any] = dict(preloaded or {})
        #: Before 3.3: the fallback's Variable rows read with the row (None: there is none yet).
        self._variables: dict[str, Any] = {}

    @classmethod
    def find(
        cls, session: Session, ref: TaskInstanceRef, *, lock: bool = False, preload: tuple[str, ...] = ()
    ) -> TaskInstanceRecord | None:
        """The task instance, or None if there is none; ``lock``: its row is locked until the session ends.

        ``preload``: these stored values, and the TI's trigger, are read in the same statement (one
        database round trip instead of one each): the metadata-database state backend's rows on 3.3+,
        the fallback's Variables before.
        """
        if not (preload and (not compat.HAS_TASK_STATE_STORE or compat.state_store_is_metastore())):
            preload = ()
        store = compat.HAS_TASK_STATE_STORE
        params: dict[str, Any] = {"dag_id": ref.dag_id, "run_id": ref.run_id, "task_id": ref.task_id}
        params["map_index"] = ref.map_index
        if not store:
            params |= {f"variable_{i}": variables.variable_key(ref, key) for i, key in enumerate(preload)}
        found = session.execute(_read_statement(preload, lock, store), params).one_or_none()
        if found is None:
            return None
        record = cls(session, ref, found[0])
        values = tuple(found[1:])
        if preload:
            record._run, values = (values[0], values[1]), values[2:]
        for key, value in zip(preload, values, strict=True):
            if store:
                record._preloaded[key] = value
            else:
                record._variables[key] = value
                record._preloaded[key] = variables.unwrap(ref, key, _decrypted(value)) if value is not None else None
        return record

    @property
    def state(self) -> str | None:
        """The task instance's state as a plain string (``"deferred"``, ``"running"``, ...)."""
        state = self.row.state
        return state.value if state is not None and hasattr(state, "value") else state

    @property
    def run_after(self) -> datetime | None:
        """When its DAG run was due (the run's own date, for counters that follow a run)."""
        return self._run[1] if self._run is not None else getattr(self.row.dag_run, "run_after", None)

    # ---------------------------------------------------------------- the task state store

    def _read_raw(self, key: str) -> Any:
        if compat.HAS_TASK_STATE_STORE:
            return compat.state_store_get(self.session, self.ref, key)
        return fallback_values(self.session, [self.ref], key).get(self.ref)

    def read(self, key: str) -> dict[str, Any] | None:
        """The dict stored under ``key``; None if nothing is, or it is not a JSON object."""
        raw = self._preloaded[key] if key in self._preloaded else self._read_raw(key)
        if raw is None or isinstance(raw, dict):
            return raw
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def write(self, key: str, value: dict[str, Any], *, expires_at: datetime | None = None) -> None:
        """Store ``value`` under ``key``, as the Execution API would; kept ``[state_store]
        default_retention_days`` unless ``expires_at`` says otherwise (before 3.3: the fallback's sweep)."""
        if not compat.HAS_TASK_STATE_STORE:
            self._variables[key] = _write_variable(self.session, self.ref, key, value, self._variables.get(key))
            if key in self._preloaded:
                self._preloaded[key] = value
            return
        from airflow.configuration import conf

        if expires_at is None:
            days = conf.getint("state_store", "default_retention_days", fallback=0)
            expires_at = datetime.now(timezone.utc) + timedelta(days=days) if days > 0 else None
        encoded = json.dumps(value)
        if compat.state_store_is_metastore():
            run_id = self._run[0] if self._run is not None else self.row.dag_run.id
            compat.state_store_upsert(self.session, self.ref, run_id, key, encoded, expires_at=expires_at)
        else:
            compat.state_store_set(self.session, self.ref, key, encoded, expires_at=expires_at)
        if key in self._preloaded:
            self._preloaded[key] = encoded

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


@functools.lru_cache(maxsize=16)
def _read_statement(keys: tuple[str, ...], lock: bool, store: bool) -> Any:
    """The task instance row (with its trigger, and ``keys``' stored values), by bound ids.

    Built once per shape: a callback storm reads one row per callback, and building, then
    keying for SQLAlchemy's compiled cache, a fresh statement of joins and subqueries cost more
    CPU than running it. Before 3.3 (``store`` False) the fallback's Variable names are bound
    as ``variable_<i>``.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import Trigger
    from sqlalchemy import and_, bindparam, select
    from sqlalchemy.orm import contains_eager, lazyload, outerjoin

    where = [getattr(TI, name) == bindparam(name) for name in ("dag_id", "run_id", "task_id", "map_index")]
    if not keys:
        query = select(TI).where(*where)
    else:
        # Two fields of the DAG run, not the whole run Airflow joins to every task instance by
        # default: writing a stored value needs its id, the spending cap its run_after.
        run = and_(DagRun.dag_id == TI.dag_id, DagRun.run_id == TI.run_id)
        joined = outerjoin(TI, Trigger, TI.trigger_id == Trigger.id).join(DagRun, run)
        if store:
            values = [_state_store_value(key) for key in keys]
        else:
            joined, values = _with_variables(joined, len(keys))
        options = (contains_eager(TI.trigger), lazyload(TI.dag_run))
        query = select(TI, DagRun.id, DagRun.run_after, *values).select_from(joined).options(*options).where(*where)
    return query.with_for_update(of=TI) if lock else query


def _state_store_value(key: str) -> Any:
    """The metadata backend's raw value of ``key``, correlated to the TI row (as the backend's own read)."""
    from airflow.models.task_state_store import TaskStateStoreModel as Stored
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    return (
        select(Stored.value)
        .where(Stored.dag_id == TI.dag_id, Stored.run_id == TI.run_id, Stored.task_id == TI.task_id)
        .where(Stored.map_index == TI.map_index, Stored.key == key)
        .scalar_subquery()
    )


# --------------------------------------------------------- the fallback's Variables (< 3.3)


def _with_variables(joined: Any, count: int) -> tuple[Any, list[Any]]:
    """``joined`` with ``count`` fallback Variables outer-joined by bound name (``variable_<i>``)."""
    from airflow.models.variable import Variable
    from sqlalchemy import bindparam
    from sqlalchemy.orm import aliased

    rows = []
    for i in range(count):
        row = aliased(Variable)
        joined = joined.outerjoin(row, row.key == bindparam(f"variable_{i}"))
        rows.append(row)
    return joined, rows


def _variable_rows(session: Session, names: Collection[str]) -> dict[str, Any]:
    """The Variables of these keys, in one query (absent keys are left out)."""
    from airflow.models.variable import Variable
    from sqlalchemy import select

    if not names:
        return {}
    return {row.key: row for row in session.scalars(select(Variable).where(Variable.key.in_(sorted(set(names)))))}


def _variable_row(session: Session, name: str) -> Any:
    return _variable_rows(session, [name]).get(name)


def _decrypted(row: Any) -> str | None:
    """The Variable's value; None when this process cannot decrypt it (another Fernet key)."""
    try:
        return row.val
    except Exception:
        return None


def fallback_values(
    session: Session, tis: Iterable[variables.Scoped], key: str
) -> dict[TaskInstanceRef, dict[str, Any]]:
    """``key``'s value of each of these task instances in the fallback's Variables, in one query.

    Only an envelope naming that very task instance and key counts (a Variable edited to hold
    another's is not read), and a value this process cannot decrypt is left out, as if absent.
    """
    refs = {variables.variable_key(ti, key): TaskInstanceRef.of(ti) for ti in tis}
    found: dict[TaskInstanceRef, dict[str, Any]] = {}
    for name, row in _variable_rows(session, refs).items():
        ref = refs[name]
        value = variables.unwrap(ref, key, _decrypted(row))
        if value is not None:
            found[ref] = value
    return found


def _write_variable(session: Session, ref: TaskInstanceRef, key: str, value: dict[str, Any], row: Any = None) -> Any:
    """Insert or update the Variable of ``key`` (``row``: the one already read), encrypted as Airflow
    encrypts every Variable; the row written."""
    from airflow.models.variable import Variable

    name = variables.variable_key(ref, key)
    stored = json.dumps(variables.wrap(ref, key, value))
    if row is None:
        # Looked up again, never taken from the locked read: on PostgreSQL a SELECT ... FOR UPDATE that
        # waited for the row lock returns the other tables' rows as they were before it waited, so a
        # Variable that the request holding the lock inserted would be missing there (a unique-key error).
        row = _variable_row(session, name)
    if row is None:
        row = Variable(key=name, val=stored, description=variables.description(ref, key))
        session.add(row)
    else:
        row.set_val(stored)
    session.flush()
    return row


def sweep_fallback(now: datetime | None = None) -> int:
    """Drop the fallback's Variables not rewritten for ``variables.RETENTION_DAYS`` (none on 3.3+).

    A task that succeeds deletes its own; this catches the rest (tasks that failed for good, runs
    deleted). The prefix matches literally, never as a LIKE pattern. Returns how many went.
    """
    if compat.HAS_TASK_STATE_STORE:
        return 0
    from airflow.models.variable import Variable
    from sqlalchemy import delete, select

    now = now or datetime.now(timezone.utc)
    with create_session() as session:
        rows = session.scalars(select(Variable).where(Variable.key.startswith(variables.PREFIX, autoescape=True)))
        stale = [
            row.key
            for row in rows
            if row.key.startswith(variables.PREFIX)
            and (stored := _decrypted(row)) is not None
            and variables.is_stale(stored, now)
        ]
        for start in range(0, len(stale), 500):
            session.execute(
                delete(Variable)
                .where(Variable.key.in_(stale[start : start + 500]))
                .execution_options(synchronize_session=False)
            )
    return len(stale)


def start_sweeper(interval: float = 24 * 3600.0) -> threading.Thread | None:
    """Sweep the fallback now and then every ``interval`` seconds, in a daemon thread (api-server only).

    None on Airflow 3.3+ (the task state store keeps its own retention). A failed sweep is logged
    and tried again at the next interval: housekeeping never stops the api-server.
    """
    if compat.HAS_TASK_STATE_STORE:
        return None

    def _loop() -> None:
        while True:
            try:
                dropped = sweep_fallback()
                if dropped:
                    log.info("Dropped %s Veo ledger Variables older than %s days.", dropped, variables.RETENTION_DAYS)
            except Exception as exc:
                log.warning("Could not sweep old Veo ledger Variables (%s); will try again later.", exc)
            time.sleep(interval)

    thread = threading.Thread(target=_loop, name="veo-ledger-sweeper", daemon=True)
    thread.start()
    return thread
