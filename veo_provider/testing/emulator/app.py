"""The Veo API emulator as an ASGI app: the vendor's routes, the ``/_emulator/...`` admin routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veo_provider.testing.emulator.api import VeoApi
from veo_provider.testing.emulator.asgi import DROP_MARKER, DROP_SCOPE_KEY, CountingMiddleware, error, read_object
from veo_provider.testing.emulator.jobs import ADMIN_PREFIX
from veo_provider.testing.emulator.state import EmulatorConfig, EmulatorState

__all__ = ["SUBMIT_ENDPOINTS", "TASKS_PATH", "AdminApi", "create_app"]

log = logging.getLogger(__name__)

#: Submission endpoints (name as in ``veo_provider.models.ENDPOINTS``), all ``POST /veo/<name>``.
SUBMIT_ENDPOINTS = ("videos", "upsample", "extend", "reshoot", "objects")
TASKS_PATH = "/veo/tasks"
_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _EmulatorApp(FastAPI):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        await super().__call__(scope, receive, send)
        if scope.get(DROP_SCOPE_KEY):
            # uvicorn closes the transport when an ASGI app returns a value: a dropped answer.
            return DROP_MARKER
        return None


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await app.state.emulator.cancel_background()


class AdminApi:
    """``/_emulator/...``: counters, faults, reset, jobs and the access log, over HTTP (no auth)."""

    def __init__(self, state: EmulatorState):
        self.state = state

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    async def faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"faults": self.state.faults.model_dump(exclude_none=True)})
        body = await read_object(request)
        if not isinstance(body, dict):
            return body
        try:
            faults = self.state.set_faults(body)
        except ValidationError as exc:
            return error(400, "bad_request", str(exc))
        return JSONResponse({"faults": faults.model_dump(exclude_none=True)})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        await self.state.cancel_background()
        return JSONResponse({"reset": True})

    async def access_log(self, request: Request) -> Response:
        items = self.state.access_log()
        return JSONResponse({"items": items, "count": len(items)})

    async def jobs(self, request: Request) -> Response:
        items = [j.summary() for j in self.state.jobs_snapshot()]
        return JSONResponse({"items": items, "count": len(items)})


async def _no_api(request: Request) -> Response:
    return error(404, "no_api", f"no API at {request.method} {request.url.path}")


async def _on_exception(request: Request, exc: Exception) -> Response:
    log.exception("Veo emulator: unexpected error")
    return error(500, "api_error", f"emulator error: {type(exc).__name__}: {exc}")


def _route(app: FastAPI, path: str, endpoint: Callable[..., Any], *methods: str) -> None:
    # Plain Starlette routes: the handlers read raw bodies (the vendor's 400s, not FastAPI's
    # 422s) and some answer with raw ASGI callables (dropped/cut answers).
    app.add_route(path, endpoint, methods=list(methods), include_in_schema=False)


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """Build one emulator app; its state is ``app.state.emulator`` (an ``EmulatorState``)."""
    state = EmulatorState(config or EmulatorConfig())
    app = _EmulatorApp(title="Veo API emulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan)
    app.state.emulator = state
    app.add_middleware(CountingMiddleware, state=state)
    api, admin = VeoApi(state), AdminApi(state)
    for name in SUBMIT_ENDPOINTS:
        _route(app, f"/veo/{name}", api.submit_endpoint(name), "POST")
    _route(app, TASKS_PATH, api.tasks, "POST")
    _route(app, f"{ADMIN_PREFIX}/videos/{{name}}", api.video, "GET", "HEAD")
    _route(app, f"{ADMIN_PREFIX}/stats", admin.stats, "GET")
    _route(app, f"{ADMIN_PREFIX}/faults", admin.faults, "GET", "POST")
    _route(app, f"{ADMIN_PREFIX}/reset", admin.reset, "POST")
    _route(app, f"{ADMIN_PREFIX}/jobs", admin.jobs, "GET")
    _route(app, f"{ADMIN_PREFIX}/access_log", admin.access_log, "GET")
    _route(app, "/{rest:path}", _no_api, *_ALL_METHODS)
    app.add_exception_handler(Exception, _on_exception)
    return app
