"""The callback receiver: a FastAPI app the plugin mounts in the api-server at ``/veo``.

The Veo API POSTs a finished job's result to the signed ``callback_url`` we gave it. The
receiver checks the URL (the only authentication there is), keeps the delivery on the task
instance's task state store (it survives retries), fills in a submission whose answer was lost,
and resumes the deferred task at once, the way Airflow's human-in-the-loop route does.

Every rejection is a 4xx that stores nothing. The signature and the query string are never
logged (only dag/run/task/map_index and the outcome).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
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
from veo_provider.models import VeoResult, decide_state, make_event

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "MAX_BODY_BYTES",
    "VEO_TRIGGER_CLASSPATH",
    "AirflowCallbackSink",
    "CallbackSink",
    "LoadedTaskInstance",
    "create_app",
    "handle_callback",
]

log = logging.getLogger(__name__)

#: A Veo result is a few KiB; anything near this is not one.
MAX_BODY_BYTES = 1_048_576
#: Only tasks deferred on this trigger are resumed by a callback.
VEO_TRIGGER_CLASSPATH = "veo_provider.triggers.veo.VeoTrigger"
#: A task deferred more recently than this is resumed only once this old (see handle_callback).
MIN_DEFERRED_SECONDS = 3.0


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
    def store(
        self, target: CallbackTarget, callback_value: dict[str, Any], ledger_update: dict[str, Any] | None
    ) -> None:
        """Write the delivery under CALLBACK_KEY (and the reconciled ledger entry, if any)."""

    @abstractmethod
    def resume(self, target: CallbackTarget, payload: dict[str, Any]) -> bool:
        """Resume the deferred task instance with ``payload`` as its trigger event; False if it was not."""


# --------------------------------------------------------------------------------- the checks


def _where(params: Mapping[str, str]) -> str:
    """Which task instance a request names, for logs (never the signature or the whole query)."""
    parts = (params.get(p, "?")[:250] for p in ("dag_id", "run_id", "task_id", "map_index"))
    return "/".join(repr(p) for p in parts)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_body(body: bytes) -> tuple[dict[str, Any], str]:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CallbackRejected(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise CallbackRejected(400, f"the body must be a JSON object (got a JSON {type(data).__name__})")
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise CallbackRejected(400, "the body has no task_id")
    return data, task_id


def _is_final(body: Any) -> bool:
    try:
        return decide_state(VeoResult.model_validate(body)).state.done
    except ValidationError:
        return True  # unreadable: never replace it


def handle_callback(
    sink: CallbackSink, params: Mapping[str, str], body: bytes, *, now: float | None = None
) -> dict[str, Any]:
    """Verify, store and (when the job is done) resume; returns the 200 answer or raises CallbackRejected.

    Blocking (database work): run it in a thread from async code.
    """
    conn_id = params.get("conn_id")
    secrets = sink.secrets_for(conn_id) if conn_id and all(params.get(p) for p in CALLBACK_PARAMS) else []
    target = verify_callback(params, secrets, now=now)

    data, veo_task_id = _parse_body(body)
    try:
        status = decide_state(VeoResult.model_validate(data))
    except ValidationError:
        raise CallbackRejected(400, "the body is not a Veo result (unexpected field types)") from None

    with sink.transaction(target):
        loaded = sink.load(target)
        if loaded is None:
            raise CallbackRejected(404, "no such task instance")
        ledger = loaded.ledger
        if not isinstance(ledger, dict) or ledger.get("key") != target.submission_key:
            raise CallbackRejected(404, "the task instance has no submission with this key (stale or unknown)")
        if ledger.get("task_id") and ledger["task_id"] != veo_task_id:
            raise CallbackRejected(409, "the body's task_id is not the job this submission created")

        stored = loaded.stored_callback
        if (
            isinstance(stored, dict)
            and stored.get("key") == target.submission_key
            and (_is_final(stored.get("body")) or not status.state.done)
        ):
            return {"status": "duplicate"}

        received_at = datetime.now(timezone.utc).isoformat()
        callback_value = {
            "key": target.submission_key,
            "task_id": veo_task_id,
            "received_at": received_at,
            "body": data,
        }
        ledger_update = None
        if ledger.get("state") == "submitting" and not ledger.get("task_id"):
            # The submission's answer was lost; the callback tells us which job it created.
            ledger_update = {
                **ledger,
                "state": "submitted",
                "task_id": veo_task_id,
                "trace_id": status.trace_id or ledger.get("trace_id"),
                "at": received_at,
            }
        sink.store(target, callback_value, ledger_update)

        kwargs = loaded.trigger_kwargs or {}
        resumable = (
            status.state.done
            and loaded.state == "deferred"
            and loaded.trigger_classpath == VEO_TRIGGER_CLASSPATH
            and kwargs.get("submission_key") == target.submission_key
            and kwargs.get("task_id") in (None, veo_task_id)
        )
    if not resumable:
        return {"status": "stored", "resumed": False}
    # Airflow 3.3 race: a task resumed before the scheduler has processed the executor event of
    # its deferral exit can be failed by the scheduler ("finished with state success, but the task
    # instance's state attribute is queued"). Give a just-deferred task that time; resume() locks
    # and re-checks the task instance, and the delivery is already stored either way.
    if (wait := MIN_DEFERRED_SECONDS - (loaded.deferred_seconds or MIN_DEFERRED_SECONDS)) > 0:
        time.sleep(wait)
    with sink.transaction(target):
        resumed = sink.resume(target, make_event(status, veo_task_id, target.submission_key, "callback"))
    return {"status": "stored", "resumed": resumed}


# ---------------------------------------------------------------------------------- the app


def create_app(sink: CallbackSink | None = None) -> FastAPI:
    """The receiver app; ``POST /callback`` (public URL ``<api-server>/veo/callback``)."""
    the_sink = sink if sink is not None else AirflowCallbackSink()
    app = FastAPI(title="Veo callback receiver", docs_url=None, redoc_url=None, openapi_url=None)

    def reject(exc: CallbackRejected, where: str) -> JSONResponse:
        log.warning("Veo callback for %s rejected: %s %s", where, exc.status_code, exc.reason)
        return JSONResponse({"detail": exc.reason}, status_code=exc.status_code)

    @app.post("/callback")
    async def callback(request: Request) -> JSONResponse:
        params = request.query_params
        where = _where(params)
        try:
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise CallbackRejected(415, "the body must be application/json")
            body = await _read_body(request)
            if any(n > 1 for n in _counts(params.multi_items()).values()):
                raise CallbackRejected(400, "a query parameter is repeated")  # which one would we have verified?
            answer = await run_in_threadpool(handle_callback, the_sink, dict(params), body)
        except CallbackRejected as exc:
            return reject(exc, where)
        except Exception as exc:
            log.error("Veo callback for %s failed: %s", where, type(exc).__name__, exc_info=True)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        if answer["status"] == "duplicate":
            log.info("Veo callback for %s: duplicate delivery, nothing changed", where)
        else:
            log.info("Veo callback for %s: stored, resumed=%s", where, answer["resumed"])
        return JSONResponse(answer)

    return app


def _counts(items: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, _ in items:
        counts[key] = counts.get(key, 0) + 1
    return counts


async def _read_body(request: Request) -> bytes:
    """The body, refused (413) past MAX_BODY_BYTES whether or not Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise CallbackRejected(400, "Content-Length is not a number")
        if int(declared) > MAX_BODY_BYTES:
            raise CallbackRejected(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise CallbackRejected(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
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
            extra = Connection.get_connection_from_secrets(conn_id).extra_dejson
        except AirflowNotFoundException:
            return []
        values = (extra.get("callback_secret"), extra.get("callback_secret_previous"))
        return [v for v in values if isinstance(v, str) and v]

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

    def store(
        self, target: CallbackTarget, callback_value: dict[str, Any], ledger_update: dict[str, Any] | None
    ) -> None:
        from airflow.configuration import conf
        from airflow.state import get_state_backend

        days = conf.getint("state_store", "default_retention_days", fallback=0)
        expires_at = datetime.now(timezone.utc) + timedelta(days=days) if days > 0 else None
        backend, scope = get_state_backend(), self._scope(target)
        with self._current(target) as tx:
            backend.set(scope, CALLBACK_KEY, json.dumps(callback_value), expires_at=expires_at, session=tx.session)
            if ledger_update is not None:
                backend.set(scope, LEDGER_KEY, json.dumps(ledger_update), expires_at=expires_at, session=tx.session)

    def resume(self, target: CallbackTarget, payload: dict[str, Any]) -> bool:
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.models.trigger import handle_event_submit
        from airflow.sdk.serde import serialize
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.state import TaskInstanceState

        with self._current(target) as tx:
            ti = self._lock_ti(tx, target)
            if ti is None:
                return False
            # As Airflow's HITL route: lock the TI row, resume only a DEFERRED task.
            locked_ti = tx.session.get(TI, ti.id, with_for_update={"of": TI})
            if locked_ti is None or locked_ti.state != TaskInstanceState.DEFERRED:
                return False
            trigger = locked_ti.trigger if locked_ti.trigger_id is not None else None
            if trigger is None or trigger.classpath != VEO_TRIGGER_CLASSPATH:
                return False
            if dict(trigger.kwargs).get("submission_key") != target.submission_key:
                return False
            try:
                serialize(payload)  # a body serde cannot encode would make handle_event_submit fail the task
            except Exception as exc:
                log.warning("Callback result of %s cannot be passed as an event (%s): not resuming", ti, exc)
                return False
            handle_event_submit(TriggerEvent(payload), task_instance=locked_ti, session=tx.session)
            return locked_ti.state == TaskInstanceState.SCHEDULED
