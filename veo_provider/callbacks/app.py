"""The callback app: ``POST /callback``, mounted by the plugin in the api-server at ``/veo``.

It only wires HTTP to the decision: repeated parameters and other media types are refused, the
signed URL is checked (``decision.authenticate``) before the body is read (``limits.read_body``),
and the answer is logged without the signature or the query string (only
dag/run/task/map_index and the outcome). Every rejection is a 4xx that stores nothing; every
authentication failure is the same 403.
"""

from __future__ import annotations

import logging
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from veo_provider.callbacks.decision import FORBIDDEN, CallbackPort, authenticate, handle_callback, where
from veo_provider.callbacks.limits import read_body
from veo_provider.callbacks.signing import CallbackRejected

__all__ = ["add_callback_route", "create_app"]

log = logging.getLogger(__name__)


def add_callback_route(app: FastAPI, port: CallbackPort | None = None) -> None:
    """``POST /callback`` on ``app`` (public URL ``<api-server>/veo/callback``): store and wake."""
    if port is None:
        from veo_provider.callbacks.airflow_port import AirflowCallbackPort

        port = AirflowCallbackPort()
    the_port = port

    @app.post("/callback")
    async def callback(request: Request) -> JSONResponse:
        params = request.query_params
        named = where(params)
        try:
            if any(n > 1 for n in Counter(key for key, _ in params.multi_items()).values()):
                # Which one would we have verified?
                raise CallbackRejected(403, FORBIDDEN, detail="a query parameter is repeated")
            if the_port.reads_secrets_at_once(params.get("conn_id", "")):
                target = authenticate(the_port, dict(params))  # an HMAC: cheaper than a thread hop
            else:
                target = await run_in_threadpool(authenticate, the_port, dict(params))
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise CallbackRejected(415, "the body must be application/json")
            answer = await handle_callback(the_port, target, await read_body(request))
        except CallbackRejected as exc:
            log.warning("Veo callback for %s rejected: %s %s", named, exc.status_code, exc.detail or exc.reason)
            return JSONResponse({"detail": exc.reason}, status_code=exc.status_code)
        except Exception as exc:
            log.error("Veo callback for %s failed: %s", named, type(exc).__name__, exc_info=True)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        log.info("Veo callback for %s: %s, resumed=%s", named, answer["status"], answer["resumed"])
        return JSONResponse(answer)


def create_app(port: CallbackPort | None = None) -> FastAPI:
    """An app with the callback route only (the plugin builds the api-server's app, with the cap's route too)."""
    app = FastAPI(title="Veo callback receiver", docs_url=None, redoc_url=None, openapi_url=None)
    add_callback_route(app, port)
    return app
