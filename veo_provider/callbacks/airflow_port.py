"""The receiver's database port on Airflow core: connections, the task instance row, its stored state, resume.

The task instance and its task-state-store values come from the ledger's database side
(``ledger.database``); this module adds what only the receiver needs: the callback secrets of
a connection, the trigger a task is deferred on, and resuming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import astuple, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from veo_provider.callbacks.decision import CallbackPort, LoadedTaskInstance
from veo_provider.callbacks.signing import CallbackRejected, CallbackTarget
from veo_provider.ledger.database import TaskInstanceRecord, TaskInstanceRef, create_session
from veo_provider.ledger.keys import LEDGER_KEY, STORED_CALLBACK_KEY
from veo_provider.models.records import VEO_TRIGGER_CLASSPATH
from veo_provider.settings import callback_secrets

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["AirflowCallbackPort"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long an api-server process reuses a connection's callback secrets before reading them again.
#: A connection kept in the metadata database costs a SELECT and a COMMIT per read (Airflow's secrets
#: code): a storm would pay them on every callback. A secret removed from the connection is refused
#: at most this long after (docs/callbacks.md, rotating the secret).
SECRETS_TTL = 30.0


#: Most callbacks one database transaction serves. Under a storm the calls that queue while one
#: transaction runs share the next: one connection checkout, one COMMIT, and (3.3+) one locked read.
BATCH_MAX = 32
#: Transaction threads per api-server process: while one waits on the database, another works.
TX_THREADS = 4
#: What a callback's transaction reads with its task instance row.
_PRELOAD = (LEDGER_KEY, STORED_CALLBACK_KEY)


@dataclass
class _Tx:
    session: Session
    record: TaskInstanceRecord | None = None
    #: Part of a transaction of several callbacks: whoever opened it commits it.
    shared: bool = False


@dataclass
class _Call:
    """One ``CallbackPort.call`` waiting for the transaction thread."""

    target: CallbackTarget
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    def settle(self, ok: bool, value: Any) -> None:
        def _set() -> None:
            if not self.future.done():
                self.future.set_result(value) if ok else self.future.set_exception(value)

        self.loop.call_soon_threadsafe(_set)

    def run_alone(self) -> None:
        try:
            self.settle(True, self.fn(*self.args))
        except Exception as exc:
            self.settle(False, exc)


class AirflowCallbackPort(CallbackPort):
    """``CallbackPort`` on Airflow 3.3 core: one session per transaction, the TI row locked by ``load``."""

    def __init__(self) -> None:
        self._tx: ContextVar[_Tx | None] = ContextVar(f"veo_callback_tx_{id(self)}", default=None)
        self._secrets: dict[str, tuple[float, list[str]]] = {}  # conn_id -> (read at, secrets)
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._thread_lock = threading.Lock()

    # ------------------------------------------------------------ shared transactions

    async def call(self, target: CallbackTarget, fn: Callable[..., T], *args: Any) -> T:
        """Queue ``fn(*args)`` for the transaction threads; the calls queued together share one transaction.

        A few threads do every callback's database work in this process (more would only take
        turns at the GIL); under a storm each takes what queued meanwhile, up to BATCH_MAX, into
        one transaction: one connection checkout (with its ping) and one COMMIT for all of them.
        Each answer still waits for the COMMIT of the transaction its work is in.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._calls.put(_Call(target, fn, args, loop, future))
        return await future

    def _start(self) -> None:
        if len(self._threads) == TX_THREADS:
            return
        with self._thread_lock:
            while len(self._threads) < TX_THREADS:
                thread = threading.Thread(target=self._serve, name=f"veo-callback-tx-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        while True:
            calls = [self._calls.get()]
            while len(calls) < BATCH_MAX:
                try:
                    calls.append(self._calls.get_nowait())
                except queue.Empty:
                    break
            self._run(calls)

    def _run(self, calls: list[_Call]) -> None:
        if len(calls) > 1:
            try:
                outcomes = self._together(calls)
            except Exception as exc:  # a deadlock, a lost connection: nothing of it was committed
                log.warning("A transaction of %d Veo callbacks failed (%s): each runs alone", len(calls), exc)
            else:
                for call, (ok, value) in zip(calls, outcomes, strict=True):
                    call.settle(ok, value)
                return
        for call in calls:
            call.run_alone()

    def _together(self, calls: list[_Call]) -> list[tuple[bool, Any]]:
        """Every call in one transaction, their rows locked first in one order (no deadlock between
        api-server processes); a call refused (CallbackRejected, raised before it writes) is answered
        alone, any other failure rolls back all of them."""
        outcomes: list[tuple[bool, Any]] = []
        with create_session() as session:
            refs = sorted({TaskInstanceRef.of(c.target) for c in calls}, key=astuple)
            records = {ref: TaskInstanceRecord.find(session, ref, lock=True, preload=_PRELOAD) for ref in refs}
            for call in calls:
                token = self._tx.set(_Tx(session, records.get(TaskInstanceRef.of(call.target)), shared=True))
                try:
                    outcomes.append((True, call.fn(*call.args)))
                except CallbackRejected as exc:
                    outcomes.append((False, exc))
                finally:
                    self._tx.reset(token)
        return outcomes

    def reads_secrets_at_once(self, conn_id: str) -> bool:
        cached = self._secrets.get(conn_id)
        return cached is not None and time.monotonic() - cached[0] < SECRETS_TTL - 1.0  # still cached when read

    def secrets_for(self, conn_id: str) -> list[str]:
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection

        now = time.monotonic()
        cached = self._secrets.get(conn_id)
        if cached is not None and now - cached[0] < SECRETS_TTL:
            return cached[1]
        try:
            secrets = callback_secrets(Connection.get_connection_from_secrets(conn_id).extra_dejson)
        except AirflowNotFoundException:
            return []
        # Only a connection that exists and signs is kept: the id comes from a URL not yet verified,
        # so unknown ids must not grow this, and a connection just given its secret works at once.
        if secrets:
            self._secrets[conn_id] = (now, secrets)
        return secrets

    @contextlib.contextmanager
    def transaction(self, target: CallbackTarget) -> Iterator[_Tx]:
        """One session, committed at the end (rolled back on error), with the TI row locked by ``load``;
        inside a shared transaction, that one."""
        shared = self._tx.get()
        if shared is not None and shared.shared:
            yield shared
            return
        with create_session() as session:
            tx = _Tx(session)
            token = self._tx.set(tx)
            try:
                yield tx
            finally:
                self._tx.reset(token)

    @contextlib.contextmanager
    def _current(self, target: CallbackTarget) -> Iterator[_Tx]:
        tx = self._tx.get()
        if tx is not None:
            yield tx
        else:
            with self.transaction(target) as tx:
                yield tx

    @staticmethod
    def _record(tx: _Tx, target: CallbackTarget) -> TaskInstanceRecord | None:
        if tx.record is None:
            # One statement: the locked row, its DAG run, its trigger and both stored values.
            tx.record = TaskInstanceRecord.find(tx.session, TaskInstanceRef.of(target), lock=True, preload=_PRELOAD)
        return tx.record

    def load(self, target: CallbackTarget) -> LoadedTaskInstance | None:
        with self._current(target) as tx:
            record = self._record(tx, target)
            if record is None:
                return None
            ti = record.row
            classpath = kwargs = None
            trigger = ti.trigger if ti.trigger_id is not None else None
            if trigger is not None:
                classpath = trigger.classpath
                if classpath == VEO_TRIGGER_CLASSPATH:
                    try:
                        kwargs = dict(trigger.kwargs)
                    except Exception as exc:  # e.g. a Fernet key this api-server does not have
                        log.warning("Cannot read the trigger of %s (%s): not resuming it", ti, type(exc).__name__)
            created = getattr(trigger, "created_date", None)
            return LoadedTaskInstance(
                state=record.state,
                ledger=record.read(LEDGER_KEY),
                stored_callback=record.read(STORED_CALLBACK_KEY),
                trigger_classpath=classpath,
                trigger_kwargs=kwargs,
                deferred_seconds=(datetime.now(timezone.utc) - created).total_seconds() if created else None,
            )

    def store(self, target: CallbackTarget, stored: dict[str, Any]) -> None:
        with self._current(target) as tx:
            record = self._record(tx, target)
            if record is not None:
                record.write(STORED_CALLBACK_KEY, stored)

    def resume(self, target: CallbackTarget, payload: dict[str, Any]) -> bool:
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.state import TaskInstanceState

        with self._current(target) as tx:
            # As Airflow's HITL route: the TI row locked, resume only a DEFERRED task.
            # The payload is VeoEvent.build's JSON (ids only), so serde always encodes it.
            record = self._record(tx, target)
            ti = record.row if record is not None else None
            if ti is None or ti.state != TaskInstanceState.DEFERRED:
                return False
            trigger = ti.trigger if ti.trigger_id is not None else None
            if trigger is None or trigger.classpath != VEO_TRIGGER_CLASSPATH:
                return False
            if dict(trigger.kwargs).get("submission_key") != target.submission_key:
                return False
            handle_event_submit(TriggerEvent(payload), task_instance=ti, session=tx.session)
            return ti.state == TaskInstanceState.SCHEDULED
