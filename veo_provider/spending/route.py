"""``POST /quota`` (public URL ``<api-server>/veo/quota``): the api-server side of the spending cap.

Authentication comes first and reads nothing: no database, no connection, no secrets backend
(the shared key is read once, when the route is added). Without a credential the answer is
401, with a bad one 403, both before anything else happens. What is counted comes from the
credential only: the body is never read. The path keeps the word "quota" because workers of
the previous release and reverse-proxy rules already call it by that name.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from veo_provider.exceptions import SpendingCapMisconfigured
from veo_provider.spending import counter
from veo_provider.spending.credential import FORBIDDEN, MAX_TOKEN_LENGTH, deployment_key, verify_credential
from veo_provider.spending.rules import CapDecision, CapRequestRefused

__all__ = ["PATH", "add_spending_cap_route"]

log = logging.getLogger(__name__)

#: Where the route sits on the app the plugin mounts at ``/veo``.
PATH = "/quota"
UNAUTHENTICATED = "the spending-cap request carries no credential"


def _bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; 401 without one (nothing else is looked at)."""
    if not header or len(header) > MAX_TOKEN_LENGTH + 16:
        raise CapRequestRefused(401, UNAUTHENTICATED, detail="no (or an oversized) Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CapRequestRefused(401, UNAUTHENTICATED, detail="not a bearer credential")
    return token.strip()


def add_spending_cap_route(app: FastAPI) -> None:
    """Add ``POST /quota`` to ``app``; the key that checks credentials is read here, once."""
    try:
        key: bytes | None = deployment_key()
    except SpendingCapMisconfigured as exc:
        log.error("The Veo spending cap refuses every request until configured: %s", exc.message)
        key = None

    @app.post(PATH)
    async def spending_cap(request: Request) -> JSONResponse:
        try:
            token = _bearer(request.headers.get("authorization"))
            if key is None:
                raise CapRequestRefused(403, FORBIDDEN, detail="this api-server has no shared secret to check it with")
            claims = verify_credential(token, key)
            decision: CapDecision = await run_in_threadpool(counter.count, claims.request(), today=claims.issued_day())
        except CapRequestRefused as exc:
            log.warning("Veo spending-cap request refused: %s %s", exc.status_code, exc.detail or exc.reason)
            headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
            return JSONResponse({"detail": exc.reason}, status_code=exc.status_code, headers=headers)
        except counter.CounterBusy as exc:
            log.warning("Veo spending-cap request for %s not counted: %s", claims.where(), exc)
            return JSONResponse({"detail": "the spending-cap counter is busy; ask again"}, status_code=503)
        log.info(
            "Veo spending cap: %s %s: %s",
            claims.action,
            claims.where(),
            "granted" if decision.granted else f"refused ({decision.cap}={decision.limit})",
        )
        return JSONResponse(decision.model_dump())
