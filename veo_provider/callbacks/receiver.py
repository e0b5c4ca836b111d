"""The callback receiver: a FastAPI app the plugin mounts in the api-server at ``/veo``.

The Veo API POSTs a finished job's result to the signed ``callback_url`` we gave it. A callback
is only a wake-up: the receiver checks the URL (the only authentication there is) before reading
the body, keeps a small claim on the task instance's task state store (never the body), and
resumes the deferred task at once, the way Airflow's human-in-the-loop route does. The task
then reads the job from the API itself; nothing in a body decides a state or a video URL.

Every rejection is a 4xx that stores nothing; every authentication failure is the same 403.
The signature and the query string are never logged (only dag/run/task/map_index and the outcome).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from veo_provider.callbacks.signing import (
    CALLBACK_PARAMS,
    CallbackRejected,
    CallbackTarget,
    verify_callback,
)
from veo_provider.ledger import CALLBACK_KEY, LEDGER_KEY
from veo_provider.models.records import VEO_TRIGGER_CLASSPATH, CallbackDelivery, LedgerEntry, VeoEvent
from veo_provider.models.responses import TaskStatus, VeoResult, decide_state
from veo_provider.settings import callback_secrets
from veo_provider.waiting import RESUME_HOLD

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "AirflowCallbackSink",
    "CallbackSink",
    "LoadedTaskInstance",
    "create_app",
    "handle_callback",
    "read_body",
]

log = logging.getLogger(__name__)

#: A Veo result is a few KiB; anything near this is not one.
MAX_BODY_BYTES = 1_048_576
#: A Veo result nests 4 levels deep; deeper bodies are refused before anything is stored.
MAX_JSON_DEPTH = 32
#: Longest a callback for a just-deferred lost submission is held before it resumes the task.
LOST_ANSWER_WAIT = 3.0
#: What every authentication failure answers, whatever the reason (logged server-side only).
FORBIDDEN = "the callback URL is not valid"


class LoadedTaskInstance(NamedTuple):
    """What the receiver needs to know about the task instance a callback names."""

    state: str | None
    ledger: dict[str, Any] | None
    stored_callback: dict[str, Any] | None
    trigger_classpath: str | None
    trigger_kwargs: dict[str, Any] | None
    #: Seconds since the task deferred (its trigger row was created); ``None`` if not deferred.
    deferred_seconds: float | None = None


class CallbackSink(ABC):
    """The Airflow side of the receiver, kept apart so its checks can be tested without a database.

    The receiver calls ``load``, ``store`` and ``resume`` inside one ``transaction(target)``,
    so a sink that can should make them one atomic unit with the task instance locked.
    """

    @abstractmethod
    def secrets_for(self, conn_id: str) -> list[str]:
        """The connection's callback secrets (current first); empty if unknown or unconfigured."""

    def transaction(self, target: CallbackTarget) -> contextlib.AbstractContextManager[Any]:
        """Scope in which load/store/resume form one unit (default: none)."""
        return contextlib.nullcontext()

    @abstractmethod
    def load(self, target: CallbackTarget) -> LoadedTaskInstance | None:
        """The task instance's state, ledger, stored delivery and trigger; ``None`` if no such TI."""

    @abstractmethod
    def store(self, target: CallbackTarget, delivery: dict[str, Any]) -> None:
        """Write the delivery (a ``CallbackDelivery`` dump) under CALLBACK_KEY."""

    @abstractmethod
    def resume(self, target: CallbackTarget, payload: dict[str, Any]) -> bool:
        """Resume the deferred task instance with ``payload`` as its trigger event; False if it was not."""


# --------------------------------------------------------------------------------- the checks


def _where(params: Mapping[str, str]) -> str:
    """Which task instance a request names, for logs (never the signature or the whole query)."""
    parts = (params.get(p, "?")[:250] for p in ("dag_id", "run_id", "task_id", "map_index"))
    return "/".join(repr(p) for p in parts)


def authenticate(sink: CallbackSink, params: Mapping[str, str], *, now: float | None = None) -> CallbackTarget:
    """The verified target of a signed URL; any failure is one uniform 403 (the reason is only logged).

    Blocking (reads the connection): run it in a thread from async code.
    """
    conn_id = params.get("conn_id")
    secrets = sink.secrets_for(conn_id) if conn_id and all(params.get(p) for p in CALLBACK_PARAMS) else []
    try:
        return verify_callback(params, secrets, now=now)
    except CallbackRejected as exc:
        raise CallbackRejected(403, FORBIDDEN, detail=exc.reason) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _parse_body(body: bytes) -> tuple[TaskStatus, str]:
    """What the body claims (a wake-up hint only) and which job it names; 400 for anything else."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CallbackRejected(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise CallbackRejected(400, f"the body must be a JSON object (got a JSON {type(data).__name__})")
    if _too_deep(data, MAX_JSON_DEPTH):
        raise CallbackRejected(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > 200:
        raise CallbackRejected(400, "the body has no task_id (or an unusable one)")
    try:
        claimed = decide_state(VeoResult.model_validate(data))
    except ValidationError:
        raise CallbackRejected(400, "the body is not a Veo result (unexpected field types)") from None
    return claimed, task_id


def _owner_conn_id(ledger: LedgerEntry, trigger_kwargs: dict[str, Any] | None) -> str | None:
    """The connection this task's submission went through (older ledgers did not record it)."""
    return ledger.conn_id or (trigger_kwargs or {}).get("conn_id")


def _record_delivery(
    sink: CallbackSink, target: CallbackTarget, delivery: CallbackDelivery, event: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Store the claim and resume the task if it waits on this submission: (answer, seconds to wait first)."""
    with sink.transaction(target):
        loaded = sink.load(target)
        if loaded is None:
            raise CallbackRejected(404, "no such task instance")
        try:
            ledger = LedgerEntry.model_validate(loaded.ledger) if isinstance(loaded.ledger, dict) else None
        except ValueError:
            ledger = None
        if ledger is None or ledger.key != target.submission_key:
            raise CallbackRejected(404, "the task instance has no submission with this key (stale or unknown)")
        if _owner_conn_id(ledger, loaded.trigger_kwargs) != target.conn_id:
            raise CallbackRejected(403, FORBIDDEN, detail="signed for another connection than the task's")
        if ledger.veo_task_id and ledger.veo_task_id != delivery.veo_task_id:
            raise CallbackRejected(409, "the body's task_id is not the job this submission created")

        stored = CallbackDelivery.read(loaded.stored_callback)
        duplicate = stored is not None and stored.same_as(delivery)
        # A claim of "done" is never replaced by a later "still running" one; anything else is.
        keep_stored = stored is not None and stored.key == delivery.key and stored.claims_done
        if not duplicate and not (keep_stored and not delivery.claims_done):
            sink.store(target, delivery.dump())
        answer: dict[str, Any] = {"status": "duplicate" if duplicate else "stored", "resumed": False}

        kwargs = loaded.trigger_kwargs or {}
        resumable = (
            delivery.claims_done
            and loaded.state == "deferred"
            and loaded.trigger_classpath == VEO_TRIGGER_CLASSPATH
            and kwargs.get("submission_key") == target.submission_key
            and kwargs.get("veo_task_id", kwargs.get("task_id")) in (None, delivery.veo_task_id)
        )
        if not resumable:
            return answer, 0.0
        # Airflow's resume race (RESUME_HOLD): a task deferred a moment ago is not resumed here; its
        # trigger's early check reads the API at RESUME_HOLD and resumes it. A trigger that knows no
        # job (its submission answer was lost) cannot: only this callback can resume that rare one,
        # after a short wait that callers sit through (the vendor's own timeout is unknown).
        age = loaded.deferred_seconds
        if age is None or age >= RESUME_HOLD:
            answer["resumed"] = sink.resume(target, event)
            return answer, 0.0
        if kwargs.get("veo_task_id", kwargs.get("task_id")):
            return answer, 0.0
        return answer, min(RESUME_HOLD - age, LOST_ANSWER_WAIT)


def _resume(sink: CallbackSink, target: CallbackTarget, event: dict[str, Any]) -> bool:
    with sink.transaction(target):
        return sink.resume(target, event)


async def handle_callback(sink: CallbackSink, target: CallbackTarget, body: bytes) -> dict[str, Any]:
    """Parse, store the claim and (when it claims the job is done) resume; the 200 answer or CallbackRejected."""
    claimed, veo_task_id = _parse_body(body)
    delivery = CallbackDelivery.of(target.submission_key, body, veo_task_id, claimed)
    # The event is built (and small: ids only) before anything is stored.
    event = VeoEvent.build("callback", source="callback", veo_task_id=veo_task_id, submission_key=target.submission_key)
    answer, wait = await run_in_threadpool(_record_delivery, sink, target, delivery, event)
    if wait > 0:
        # Holding no thread; resume() locks and re-checks the task instance, and the claim is stored.
        await asyncio.sleep(wait)
        answer["resumed"] = await run_in_threadpool(_resume, sink, target, event)
    return answer


# ---------------------------------------------------------------------------------- the app


def create_app(sink: CallbackSink | None = None) -> FastAPI:
    """The receiver app; ``POST /callback`` (public URL ``<api-server>/veo/callback``)."""
    the_sink = sink if sink is not None else AirflowCallbackSink()
    app = FastAPI(title="Veo callback receiver", docs_url=None, redoc_url=None, openapi_url=None)

    def reject(exc: CallbackRejected, where: str) -> JSONResponse:
        log.warning("Veo callback for %s rejected: %s %s", where, exc.status_code, exc.detail or exc.reason)
        return JSONResponse({"detail": exc.reason}, status_code=exc.status_code)

    @app.post("/callback")
    async def callback(request: Request) -> JSONResponse:
        params = request.query_params
        where = _where(params)
        try:
            if any(n > 1 for n in _counts(params.multi_items()).values()):
                # Which one would we have verified?
                raise CallbackRejected(403, FORBIDDEN, detail="a query parameter is repeated")
            target = await run_in_threadpool(authenticate, the_sink, dict(params))
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise CallbackRejected(415, "the body must be application/json")
            answer = await handle_callback(the_sink, target, await read_body(request))
        except CallbackRejected as exc:
            return reject(exc, where)
        except Exception as exc:
            log.error("Veo callback for %s failed: %s", where, type(exc).__name__, exc_info=True)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        log.info("Veo callback for %s: %s, resumed=%s", where, answer["status"], answer["resumed"])
        return JSONResponse(answer)

    from veo_provider.spending.route import add_spending_cap_route

    add_spending_cap_route(app)
    return app


def _counts(items: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, _ in items:
        counts[key] = counts.get(key, 0) + 1
    return counts


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused (413) past ``limit`` bytes whether or not Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not re.fullmatch(r"[0-9]{1,12}", declared.strip()):
            raise CallbackRejected(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise CallbackRejected(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CallbackRejected(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------------------ Airflow sink


@dataclass
class _Tx:
    session: Session
    ti: Any = None


class AirflowCallbackSink(CallbackSink):
    """The sink on Airflow 3.3 core: connections, the task instance row, the task state store.

    Values are written as the Execution API writes them (``json.dumps`` of the value, through the
    configured state backend), so ``context["task_state_store"].get(key)`` returns the dict.
    """

    def __init__(self) -> None:
        self._tx: ContextVar[_Tx | None] = ContextVar(f"veo_callback_tx_{id(self)}", default=None)

    def secrets_for(self, conn_id: str) -> list[str]:
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection

        try:
            return callback_secrets(Connection.get_connection_from_secrets(conn_id).extra_dejson)
        except AirflowNotFoundException:
            return []

    @contextlib.contextmanager
    def transaction(self, target: CallbackTarget) -> Iterator[_Tx]:
        """One session, committed at the end (rolled back on error), with the TI row locked by ``load``."""
        from airflow.utils.session import create_session

        with create_session(scoped=False) as session:
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
    def _scope(target: CallbackTarget) -> Any:
        from airflow._shared.state import TaskScope

        return TaskScope(dag_id=target.dag_id, run_id=target.run_id, task_id=target.task_id, map_index=target.map_index)

    def _lock_ti(self, tx: _Tx, target: CallbackTarget) -> Any:
        from airflow.models.taskinstance import TaskInstance as TI
        from sqlalchemy import select

        if tx.ti is None:
            tx.ti = tx.session.scalar(
                select(TI)
                .where(
                    TI.dag_id == target.dag_id,
                    TI.run_id == target.run_id,
                    TI.task_id == target.task_id,
                    TI.map_index == target.map_index,
                )
                .with_for_update(of=TI)
            )
        return tx.ti

    def _get_json(self, tx: _Tx, target: CallbackTarget, key: str) -> dict[str, Any] | None:
        from airflow.state import get_state_backend

        raw = get_state_backend().get(self._scope(target), key, session=tx.session)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def load(self, target: CallbackTarget) -> LoadedTaskInstance | None:
        with self._current(target) as tx:
            ti = self._lock_ti(tx, target)
            if ti is None:
                return None
            classpath = kwargs = None
            trigger = ti.trigger if ti.trigger_id is not None else None
            if trigger is not None:
                classpath = trigger.classpath
                if classpath == VEO_TRIGGER_CLASSPATH:
                    try:
                        kwargs = dict(trigger.kwargs)
                    except Exception as exc:  # e.g. a Fernet key this api-server does not have
                        log.warning("Cannot read the trigger of %s (%s): not resuming it", ti, type(exc).__name__)
            state = ti.state.value if ti.state is not None and hasattr(ti.state, "value") else ti.state
            created = getattr(trigger, "created_date", None)
            return LoadedTaskInstance(
                state=state,
                ledger=self._get_json(tx, target, LEDGER_KEY),
                stored_callback=self._get_json(tx, target, CALLBACK_KEY),
                trigger_classpath=classpath,
                trigger_kwargs=kwargs,
                deferred_seconds=(datetime.now(timezone.utc) - created).total_seconds() if created else None,
            )

    def store(self, target: CallbackTarget, delivery: dict[str, Any]) -> None:
        from airflow.configuration import conf
        from airflow.state import get_state_backend

        days = conf.getint("state_store", "default_retention_days", fallback=0)
        expires_at = datetime.now(timezone.utc) + timedelta(days=days) if days > 0 else None
        with self._current(target) as tx:
            get_state_backend().set(
                self._scope(target), CALLBACK_KEY, json.dumps(delivery), expires_at=expires_at, session=tx.session
            )

    def resume(self, target: CallbackTarget, payload: dict[str, Any]) -> bool:
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.state import TaskInstanceState

        with self._current(target) as tx:
            # As Airflow's HITL route: the TI row locked (by _lock_ti), resume only a DEFERRED task.
            # The payload is VeoEvent.build's JSON (ids only), so serde always encodes it.
            ti = self._lock_ti(tx, target)
            if ti is None or ti.state != TaskInstanceState.DEFERRED:
                return False
            trigger = ti.trigger if ti.trigger_id is not None else None
            if trigger is None or trigger.classpath != VEO_TRIGGER_CLASSPATH:
                return False
            if dict(trigger.kwargs).get("submission_key") != target.submission_key:
                return False
            handle_event_submit(TriggerEvent(payload), task_instance=ti, session=tx.session)
            return ti.state == TaskInstanceState.SCHEDULED
