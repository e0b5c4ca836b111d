"""``POST /veo/quota``: the api-server side of the spending cap (see ``spending.py``).

One transaction per request: check that the named task instance is running and that its own
ledger (written through the Execution API, which only that task's token can do) holds the
submission key asked for, then lock each counter's Variable row and grant or refuse.
A request that proves nothing gets one uniform 404 and changes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from veo_provider.callbacks.signing import CallbackRejected
from veo_provider.ledger import LEDGER_KEY
from veo_provider.models.records import LedgerEntry
from veo_provider.spending import QUOTA_PREFIX, CapDecision, CapRequest, Counted, Scope, apply_to_counts, scopes_of

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["MAX_QUOTA_BODY", "RETENTION_DAYS", "add_quota_route", "apply_in_db"]

log = logging.getLogger(__name__)

MAX_QUOTA_BODY = 4096
#: Counters older than this are dropped (once a day per api-server process).
RETENTION_DAYS = 35
NOT_FOUND = "no such submission"
_cleaned_on: set[date] = set()


def _ledger(session: Session, request: CapRequest) -> LedgerEntry | None:
    from airflow._shared.state import TaskScope
    from airflow.state import get_state_backend

    scope = TaskScope(request.dag_id, request.run_id, request.task_id, request.map_index)
    raw = get_state_backend().get(scope, LEDGER_KEY, session=session)
    try:
        return LedgerEntry.model_validate(json.loads(raw)) if raw else None
    except ValueError:
        return None


def _run_day(session: Session, request: CapRequest) -> date | None:
    """The running task instance's DAG run date, or None if the task instance is not running."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    row = session.execute(
        select(TI.state, DagRun.run_after)
        .join(DagRun, (DagRun.dag_id == TI.dag_id) & (DagRun.run_id == TI.run_id))
        .where(
            TI.dag_id == request.dag_id,
            TI.run_id == request.run_id,
            TI.task_id == request.task_id,
            TI.map_index == request.map_index,
        )
    ).first()
    if row is None or row.state != TaskInstanceState.RUNNING:
        return None
    run_after = row.run_after or datetime.now(timezone.utc)
    return run_after.astimezone(timezone.utc).date()


def _locked_variable(session: Session, scope: Scope) -> Any:
    """The scope's Variable row, created if missing, locked until the transaction ends."""
    from airflow.models.variable import Variable
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    query = select(Variable).where(Variable.key == scope.variable).with_for_update()
    variable = session.scalar(query)
    if variable is None:
        try:
            with session.begin_nested():  # another api-server may be creating it right now
                description = f"Veo spending cap {scope.cap}={scope.limit}: {scope.label} (airflow-provider-veo)"
                session.add(Variable(key=scope.variable, val=Counted().dump(scope), description=description))
        except IntegrityError:
            pass
        variable = session.scalar(query)
    return variable


def _drop_old_counters(session: Session, today: date) -> None:
    from airflow.models.variable import Variable
    from sqlalchemy import delete

    if today in _cleaned_on:
        return
    cutoff = today - timedelta(days=RETENTION_DAYS)
    for kind in ("day", "run"):
        prefix = f"{QUOTA_PREFIX}{kind}:"
        session.execute(
            delete(Variable)
            .where(Variable.key.like(f"{prefix}%"), Variable.key < f"{prefix}{cutoff}")
            .execution_options(synchronize_session=False)
        )
    _cleaned_on.add(today)


def apply_in_db(session: Session, request: CapRequest) -> CapDecision:
    """Reserve or hand back ``request.key``; CallbackRejected(404) when the request proves nothing."""
    run_day = _run_day(session, request)
    entry = _ledger(session, request) if run_day is not None else None
    wanted = "submitting" if request.action == "reserve" else "refused"
    if run_day is None or entry is None or entry.key != request.key or entry.state != wanted:
        raise CallbackRejected(404, NOT_FOUND, detail=f"task instance not running, or its ledger is not {wanted!r}")
    today = datetime.now(timezone.utc).date()
    scopes = scopes_of(entry.caps, entry.conn_id, request.dag_id, request.run_id, today, run_day)
    variables = [_locked_variable(session, scope) for scope in scopes]
    counts = [Counted.load(variable.val) for variable in variables]
    decision = apply_to_counts(request, scopes, counts)
    for scope, variable, counted in zip(scopes, variables, counts, strict=True):
        variable.val = counted.dump(scope)
    _drop_old_counters(session, today)
    session.flush()
    return decision


def _apply(request: CapRequest) -> CapDecision:
    from airflow.utils.session import create_session

    with create_session(scoped=False) as session:
        return apply_in_db(session, request)


def add_quota_route(app: FastAPI) -> None:
    """``POST /quota`` on the receiver app (public URL ``<api-server>/veo/quota``)."""
    from veo_provider.callbacks.limits import read_body

    @app.post("/quota")
    async def quota(request: Request) -> JSONResponse:
        try:
            body = await read_body(request, MAX_QUOTA_BODY)
            try:
                cap_request = CapRequest.model_validate_json(body)
            except ValidationError:
                raise CallbackRejected(400, "the body is not a spending-cap request") from None
            decision = await run_in_threadpool(_apply, cap_request)
        except CallbackRejected as exc:
            log.warning("Veo spending-cap request refused: %s %s", exc.status_code, exc.detail or exc.reason)
            return JSONResponse({"detail": exc.reason}, status_code=exc.status_code)
        log.info(
            "Veo spending cap: %s %s/%s/%s[%s]: %s",
            cap_request.action,
            cap_request.dag_id,
            cap_request.run_id,
            cap_request.task_id,
            cap_request.map_index,
            "granted" if decision.granted else f"refused ({decision.cap}={decision.limit})",
        )
        return JSONResponse(decision.model_dump())
